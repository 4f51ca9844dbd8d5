# Adafactor (Shazeer & Stern 2018), as optax.adafactor with its defaults:
# factored second moment for leaves whose two largest dimensions are >= 128
# (O(n + m) state for an n x m matrix; the full moment otherwise), decay
# beta2_t = 1 - t^(-decay_rate), epsilon added to g^2, update clipped by its RMS,
# scaled by the parameter's RMS (at least min_scale), no first moment.
decay_rate = 0.8
epsilon = 1e-30
clipping_threshold = 1.0
min_scale = 0.001
def train(w, g, lr, t, v_row, v_col):
  g2 = square(g)
  g2 = g2 + epsilon
  exponent = negative(decay_rate)
  tp = power(t, exponent)
  beta = invert(tp)
  row = factor_row(g2)
  col = factor_col(g2)
  v_row = interp(row, v_row, beta)
  v_col = interp(col, v_col, beta)
  v = unfactor(v_row, v_col, g)
  root = sqrt(v)
  step = g / root
  step_rms = rms(step)
  ratio = step_rms / clipping_threshold
  clip_denom = max(ratio, 1.0)
  step = step / clip_denom
  w_rms = rms(w)
  scale = max(w_rms, min_scale)
  step = step * scale
  update = step * lr
  return update, v_row, v_col
