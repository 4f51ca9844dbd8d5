# Muon (Jordan et al. 2024), as optax.contrib.muon: on each weight matrix, Nesterov
# momentum (bias-corrected, beta) orthogonalized by Newton-Schulz and scaled by
# sqrt(max(1, fan_out / fan_in)); on every other parameter, AdamW with Nesterov
# momentum (optax.adamw(nesterov=True), adam_b1, adam_b2, epsilon); no weight decay,
# one lr. (optax's eps is also the Newton-Schulz one, here always 1e-8.)
beta = 0.95
adam_b1 = 0.9
adam_b2 = 0.999
epsilon = 1e-08
def train(w, g, lr, t, m, v):
  matrix = is_matrix(g)
  b = where(matrix, beta, adam_b1)
  m = interp(g, m, b)
  g2 = square(g)
  v = interp(g2, v, adam_b2)
  p0 = power(b, t)
  c0 = invert(p0)
  g_hat = g / c0
  p1 = p0 * b
  c1 = invert(p1)
  m_hat = m / c1
  m_hat = interp(g_hat, m_hat, b)
  ortho = newton_schulz(m_hat)
  rows = fan_in(g)
  cols = fan_out(g)
  ratio = cols / rows
  ratio = max(ratio, 1.0)
  shape_scale = sqrt(ratio)
  ortho = ortho * shape_scale
  p2 = power(adam_b2, t)
  c2 = invert(p2)
  v_hat = v / c2
  root = sqrt(v_hat)
  denom = root + epsilon
  adam = m_hat / denom
  step = where(matrix, ortho, adam)
  update = step * lr
  return update, m, v
