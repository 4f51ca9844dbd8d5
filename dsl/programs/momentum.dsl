# Heavy-ball momentum with L2 weight decay, as torch.optim.SGD(momentum=beta,
# weight_decay=weight_decay) and optax.chain(optax.add_decayed_weights(weight_decay),
# optax.sgd(learning_rate, momentum=beta)): the decay is added to the gradient, then
# optax.trace keeps m <- g + beta * m (no dampening) and the step is lr * m.
beta = 0.9
weight_decay = 0.0
def train(w, g, lr, t, m):
  decay = w * weight_decay
  g = g + decay
  decayed = m * beta
  m = g + decayed
  update = m * lr
  return update, m
