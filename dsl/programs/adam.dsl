# Adam (Kingma & Ba 2014), as optax.adam: bias-corrected moments, with epsilon
# added outside the square root (eps_root = 0), as optax does.
b1 = 0.9
b2 = 0.999
epsilon = 1e-08
def train(w, g, lr, t, m, v):
  m = interp(g, m, b1)
  g2 = square(g)
  v = interp(g2, v, b2)
  p1 = power(b1, t)
  c1 = invert(p1)
  m_hat = m / c1
  p2 = power(b2, t)
  c2 = invert(p2)
  v_hat = v / c2
  root = sqrt(v_hat)
  denom = root + epsilon
  step = m_hat / denom
  update = step * lr
  return update, m, v
