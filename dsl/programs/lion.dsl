# Lion (Chen et al. 2023, Program 1), as optax.lion: the sign of an
# interpolation of g and the momentum, decoupled weight decay, times lr; the
# momentum itself uses a slower beta2.
b1 = 0.9
b2 = 0.99
weight_decay = 0.001
def train(w, g, lr, t, m):
  update = interp(g, m, b1)
  update = sign(update)
  m = interp(g, m, b2)
  decay = w * weight_decay
  update = update + decay
  update = update * lr
  return update, m
