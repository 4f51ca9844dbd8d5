# Adagrad, as optax.adagrad: the accumulator starts at initial_accumulator_value
# (states start at zero here, so the state holds the sum of squares and the
# initial value is added back), epsilon inside the square root.
initial_accumulator_value = 0.1
epsilon = 1e-07
def train(w, g, lr, t, sum_sq):
  g2 = square(g)
  sum_sq = sum_sq + g2
  total = sum_sq + initial_accumulator_value
  shifted = total + epsilon
  root = sqrt(shifted)
  step = g / root
  update = step * lr
  return update, sum_sq
