# C-Lion (Liang et al. 2024, "Cautious Optimizers"), after timm's Lion with
# caution=True: Lion's sign kept only where it agrees with the gradient's sign,
# divided by the fraction of the leaf kept (timm floors that fraction at 1e-3; here
# eps only keeps a leaf where nothing agrees at zero); then decoupled weight decay
# (not masked), all times lr.
b1 = 0.9
b2 = 0.99
weight_decay = 0.001
def train(w, g, lr, t, m):
  update = interp(g, m, b1)
  update = sign(update)
  m = interp(g, m, b2)
  agree = update * g
  mask = gt(agree, 0.0)
  kept = mean(mask)
  kept = max(kept, eps)
  mask = mask / kept
  update = update * mask
  decay = w * weight_decay
  update = update + decay
  update = update * lr
  return update, m
