# SGD, as optax.sgd(learning_rate): w <- w - lr * g.
def train(w, g, lr, t):
  update = g * lr
  return update
