# Adan (Xie et al. 2022), as optax.adan: moments of g, of the gradient difference
# (zero at the first step) and of (g + (1 - b2) * diff)^2, all bias-corrected;
# eps_root inside and epsilon outside the square root; then decoupled weight
# decay and lr. The previous gradient is the state prev_g.
b1 = 0.98
b2 = 0.92
b3 = 0.99
epsilon = 1e-08
eps_root = 1e-08
weight_decay = 0.0
def train(w, g, lr, t, m, v, n, prev_g):
  first = eq(t, 1.0)
  delta = g - prev_g
  diff = where(first, 0.0, delta)
  m = interp(g, m, b1)
  v = interp(diff, v, b2)
  k = invert(b2)
  kdiff = diff * k
  mix = g + kdiff
  mix2 = square(mix)
  n = interp(mix2, n, b3)
  p1 = power(b1, t)
  c1 = invert(p1)
  m_hat = m / c1
  p2 = power(b2, t)
  c2 = invert(p2)
  v_hat = v / c2
  p3 = power(b3, t)
  c3 = invert(p3)
  n_hat = n / c3
  kv = v_hat * k
  num = m_hat + kv
  shifted = n_hat + eps_root
  root = sqrt(shifted)
  denom = root + epsilon
  step = num / denom
  decay = w * weight_decay
  step = step + decay
  update = step * lr
  return update, m, v, n, g
