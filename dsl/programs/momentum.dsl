# Heavy-ball momentum, as optax.sgd(learning_rate, momentum=beta):
# optax.trace keeps m <- g + beta * m (no dampening) and the step is lr * m.
beta = 0.9
def train(w, g, lr, t, m):
  decayed = m * beta
  m = g + decayed
  update = m * lr
  return update, m
