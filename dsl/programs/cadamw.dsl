# C-AdamW (Liang et al. 2024, "Cautious Optimizers"), after timm's AdamW with
# caution=True: AdamW's bias-corrected direction kept only where it agrees in sign
# with the gradient, divided by the fraction of the leaf kept (timm floors that
# fraction at 1e-3; here eps only keeps a leaf where nothing agrees at zero); then
# decoupled weight decay (not masked), all times lr.
b1 = 0.9
b2 = 0.999
epsilon = 1e-08
weight_decay = 0.0001
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
  agree = step * g
  mask = gt(agree, 0.0)
  kept = mean(mask)
  kept = max(kept, eps)
  mask = mask / kept
  step = step * mask
  decay = w * weight_decay
  step = step + decay
  update = step * lr
  return update, m, v
