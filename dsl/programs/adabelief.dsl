# AdaBelief (Zhuang et al. 2020), as optax.adabelief: the second moment tracks
# the squared prediction error g - m (with the new m), eps_root is added to the
# stored state each step, and epsilon is added outside the square root.
b1 = 0.9
b2 = 0.999
epsilon = 1e-16
eps_root = 1e-16
def train(w, g, lr, t, m, s):
  m = interp(g, m, b1)
  error = g - m
  e2 = square(error)
  s = interp(e2, s, b2)
  s = s + eps_root
  p1 = power(b1, t)
  c1 = invert(p1)
  m_hat = m / c1
  p2 = power(b2, t)
  c2 = invert(p2)
  s_hat = s / c2
  root = sqrt(s_hat)
  denom = root + epsilon
  step = m_hat / denom
  update = step * lr
  return update, m, s
