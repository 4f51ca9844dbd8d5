# Schedule-Free AdamW (Defazio et al. 2024), as optax.contrib.schedule_free_adamw with a
# constant learning rate: the weights are y, an interpolation (b1) of the averaged
# iterate x and the base iterate z; z takes an AdamW step without momentum (RMS of g,
# bias-corrected, epsilon outside the square root, decoupled weight decay, times lr),
# x averages z with weights lr_max^weight_lr_power, and x is recovered from y and z.
# optax reads a schedule at two counts (the base step at t-1, the averaging weight at
# t); a program reads one lr a step, so with a schedule the two differ by one step.
# Evaluate at x as optax.contrib.schedule_free_eval_params does; a task's metric here
# is taken at the weights y.
b1 = 0.9
b2 = 0.999
epsilon = 1e-08
weight_decay = 0.0
weight_lr_power = 2.0
def train(w, g, lr, t, v, lr_max, weight_sum, z=w):
  g2 = square(g)
  v = interp(g2, v, b2)
  p2 = power(b2, t)
  c2 = invert(p2)
  v_hat = v / c2
  root = sqrt(v_hat)
  denom = root + epsilon
  step = g / denom
  decay = w * weight_decay
  step = step + decay
  step = step * lr
  k = invert(b1)
  zk = z * k
  x = w - zk
  x = x / b1
  z = z - step
  lr_max = max(lr_max, lr)
  weight = power(lr_max, weight_lr_power)
  weight_sum = weight_sum + weight
  ck = weight / weight_sum
  ck = where(weight_sum, ck, weight_sum)
  x = interp(x, z, ck)
  y = interp(z, x, b1)
  update = w - y
  return update, v, lr_max, weight_sum, z
