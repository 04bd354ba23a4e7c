"""fastlstm.train.optim against torch.optim / torch.nn.utils on the same
parameters and gradients."""

import numpy as np

import fastlstm
from fastlstm.train.optim import Adam, clip_grad_value_, parameter_pairs


def test_parameter_pairs_are_the_live_arrays():
    lstm = fastlstm.LSTM(3, 4, seed=0)
    pairs = parameter_pairs(lstm)
    assert [p is q for (p, _), (_, q) in zip(pairs, lstm.named_parameters())] == [True] * 4
    assert all(g is lstm.grads[n] for (_, g), (n, _) in zip(pairs, lstm.named_parameters()))


def test_adam_matches_torch(torch, rng):
    shapes = [(4, 3), (5,)]
    params = [rng.standard_normal(s) for s in shapes]
    grads = [np.zeros_like(p) for p in params]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = Adam(list(zip(params, grads)), lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    topt = torch.optim.Adam(tparams, lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    for _ in range(5):
        for g, t in zip(grads, tparams):
            g[...] = rng.standard_normal(g.shape)
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_clip_grad_value_matches_torch(torch, rng):
    grads = [rng.standard_normal((3, 4)) * 3, rng.standard_normal(7) * 3]
    tgrads = [torch.from_numpy(g.copy()) for g in grads]
    tparams = [torch.zeros_like(t, requires_grad=True) for t in tgrads]
    for p, g in zip(tparams, tgrads):
        p.grad = g
    clip_grad_value_(grads, 1.5)
    torch.nn.utils.clip_grad_value_(tparams, 1.5)
    for g, p in zip(grads, tparams):
        np.testing.assert_array_equal(g, p.grad.numpy())
