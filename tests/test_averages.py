"""EMA and SWA (WeightAverages) against the definitions written out in float64."""

import numpy as np
import torch

import train_byte_model as tbm


def test_ema_and_swa_equal_their_float64_definitions():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    args = tbm.Hyperparameters({"EMA_DECAY": "0.9", "SWA_EVERY": "3", "SWA_LAST_FRAC": "0.5"})
    averages = tbm.WeightAverages(model, args)
    steps = 20
    history = [np.concatenate([p.detach().double().numpy().ravel() for p in model.parameters()])]
    for step in range(1, steps + 1):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        history.append(np.concatenate([p.detach().double().numpy().ravel() for p in model.parameters()]))
        averages.update(step, step / steps)
    ema = history[0]
    for weights in history[1:]:
        ema = 0.9 * ema + 0.1 * weights
    # snapshots at steps divisible by 3 once half of training has passed: 12, 15, 18
    swa = np.mean([history[s] for s in range(1, steps + 1) if s % 3 == 0 and s / steps >= 0.5], axis=0)
    found = {k: np.concatenate([t.double().numpy().ravel() for t in v]) for k, v in averages.candidates().items()}
    assert averages.swa_count == 3
    np.testing.assert_allclose(found["raw"], history[-1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(found["ema"], ema, rtol=0, atol=1e-5)
    np.testing.assert_allclose(found["swa"], swa, rtol=0, atol=1e-5)


def test_averages_off_offer_only_the_raw_weights():
    model = torch.nn.Linear(4, 4)
    averages = tbm.WeightAverages(model, tbm.Hyperparameters({"EMA_DECAY": "0", "SWA_EVERY": "0"}))
    averages.update(1, 1.0)
    assert list(averages.candidates()) == ["raw"]
