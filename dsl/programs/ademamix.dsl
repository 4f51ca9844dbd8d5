# AdEMAMix (Pagliardini et al. 2024), as optax.contrib.ademamix with a constant b3
# and alpha: Adam's bias-corrected fast EMA plus alpha times a slow EMA (b3, not
# bias-corrected, so it fills slowly), over Adam's denominator (epsilon outside the
# square root); then decoupled weight decay, all times lr.
b1 = 0.9
b2 = 0.999
b3 = 0.9999
alpha = 5.0
epsilon = 1e-08
weight_decay = 0.0
def train(w, g, lr, t, m1, m2, nu):
  m1 = interp(g, m1, b1)
  m2 = interp(g, m2, b3)
  g2 = square(g)
  nu = interp(g2, nu, b2)
  p1 = power(b1, t)
  c1 = invert(p1)
  m1_hat = m1 / c1
  p2 = power(b2, t)
  c2 = invert(p2)
  nu_hat = nu / c2
  root = sqrt(nu_hat)
  denom = root + epsilon
  slow = m2 * alpha
  mix = m1_hat + slow
  step = mix / denom
  decay = w * weight_decay
  step = step + decay
  update = step * lr
  return update, m1, m2, nu
