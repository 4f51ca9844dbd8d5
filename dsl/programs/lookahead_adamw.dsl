# Lookahead (Zhang et al. 2019) around AdamW, as
# optax.lookahead(optax.adamw(...), sync_period, slow_step_size): w holds the
# fast weights and `slow` (starting as a copy of w) the slow ones. Every
# sync_period steps the slow weights move slow_step_size of the way to the fast
# weights after their AdamW step, and the fast weights are reset to them.
b1 = 0.9
b2 = 0.999
epsilon = 1e-08
weight_decay = 0.0001
sync_period = 5.0
slow_step_size = 0.5
def train(w, g, lr, t, m, v, slow=w):
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
  decay = w * weight_decay
  step = step + decay
  fast_update = step * lr
  fast = w - fast_update
  synced = interp(slow, fast, slow_step_size)
  phase = mod(t, sync_period)
  sync = eq(phase, 0.0)
  jump = w - synced
  update = where(sync, jump, fast_update)
  slow = where(sync, synced, slow)
  return update, m, v, slow
