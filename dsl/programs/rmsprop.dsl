# RMSProp, as optax.rmsprop with its defaults (no centering, no momentum):
# epsilon inside the square root (eps_in_sqrt=True), no bias correction.
decay = 0.9
epsilon = 1e-08
def train(w, g, lr, t, nu):
  g2 = square(g)
  nu = interp(g2, nu, decay)
  shifted = nu + epsilon
  root = sqrt(shifted)
  step = g / root
  update = step * lr
  return update, nu
