# The search's default warm start and fitness baseline: the paper's Program 3
# (AdamW without bias correction; lr scaled by an evolvable constant) with eps
# added to the denominator. Program 3 itself divides 0 / 0 wherever a gradient
# entry is exactly zero from the first step on (a dead ReLU unit, a padded
# input), which turns real networks' weights into NaN.
def train(w, g, lr, t, m, v):
  g2 = square(g)
  m = interp(g, m, 0.9)
  v = interp(g2, v, 0.999)
  sqrt_v = sqrt(v)
  denom = sqrt_v + eps
  update = m / denom
  wd = w * 0.01
  update = update + wd
  lr = lr * 0.001
  update = update * lr
  return update, m, v
