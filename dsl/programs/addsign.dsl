# AddSign (Bello et al. 2017): (1 + sign(g) * sign(m)) * g, m an EMA of g.
beta = 0.9
def train(w, g, lr, t, m):
  m = interp(g, m, beta)
  sg = sign(g)
  sm = sign(m)
  agree = sg * sm
  scale = agree + 1.0
  step = scale * g
  update = step * lr
  return update, m
