# Nesterov momentum, as optax.sgd(learning_rate, momentum=beta, nesterov=True):
# m <- g + beta * m, and the step is lr * (g + beta * m).
beta = 0.9
def train(w, g, lr, t, m):
  decayed = m * beta
  m = g + decayed
  ahead = m * beta
  step = g + ahead
  update = step * lr
  return update, m
