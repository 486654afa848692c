"""The original score-SDE samplers on a denoiser D(x, sigma) (Song et al. 2021; score_sde_pytorch ``sampling.py``).

Each integrates the reverse of one SDE (``sde``: "native" = the model's own ``model.sde``, or "vp"/"ve" to sample
a model with another process) on the time grid t_i = linspace(1, eps, N), eps = 1e-3 (VP) / 1e-5 (VE) as
``run_lib.py``. The SDE's state is x_t = s(t) (x_0 + sigma(t) n), so the score of any denoiser is
grad log p_t(x) = (s D(x/s, sigma) - x) / (s sigma)^2. All return the last noise-free mean (``noise_removal``).
State stays in the caller's dtype, as the reference (float32 there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trainables.samplers.base import Denoiser, SampleResult, bcast, randn_like
from trainables.schedules import VESDE, VPSDE

Tensor = torch.Tensor
SDE = VPSDE | VESDE


def resolve_sde(model: Any, sde: str, beta_min: float = 0.1, beta_max: float = 20.0) -> SDE:
    """``native``: the model's own process; ``vp``: VPSDE(beta_min, beta_max); ``ve``: VESDE over the model's range."""
    if sde == "native":
        if not hasattr(model, "sde"):
            raise ValueError("the model has no `.sde`; name sde='vp' or sde='ve'")
        return model.sde
    if sde == "vp":
        return VPSDE(beta_min, beta_max)
    if sde == "ve":
        return VESDE(float(model.sigma_min), float(model.sigma_max))
    raise ValueError(f"unknown sde {sde!r}; allowed: native, vp, ve")


def score(model: Denoiser, sde: SDE, x: Tensor, t: Tensor) -> Tensor:
    """grad_x log p_t(x) = (s D(x/s, sigma) - x) / (s sigma)^2, s = s(t), sigma = sigma(t) (EDM Eq. 3, Table 1)."""
    t = t.expand(x.shape[0])
    sigma, s = sde.sigma(t), sde.scale(t)
    return (bcast(s, x) * model(x / bcast(s, x), sigma) - x) / bcast(s * sigma, x) ** 2


def _time_grid(sde: SDE, steps: int, eps: float | None, device: torch.device) -> Tensor:
    eps = (1e-3 if sde.kind == "vp" else 1e-5) if eps is None else eps
    return torch.linspace(1.0, eps, steps, dtype=torch.float64, device=device)


def _reverse_sde_step(
    model: Denoiser, sde: SDE, x: Tensor, t: Tensor, dt: float, generator: torch.Generator | None, ode: bool
) -> tuple[Tensor, Tensor]:
    """Euler(-Maruyama) on dx = [f - g^2 s] dt + g dw_bar (SDE) or dx = [f - 1/2 g^2 s] dt (probability-flow ODE)."""
    g = bcast(sde.diffusion(t), x)
    drift = sde.drift(x, bcast(t, x)) - (0.5 if ode else 1.0) * g**2 * score(model, sde, x, t)
    x_mean = x + drift * dt
    return (x_mean, x_mean) if ode else (x_mean + g * abs(dt) ** 0.5 * randn_like(x, generator), x_mean)


def _reverse_euler(ode: bool, name: str, doc: str) -> Callable[..., SampleResult]:
    """One sampler integrating the reverse process on the time grid with Euler steps: the SDE (Euler–Maruyama) or
    its probability-flow ODE, chosen by ``ode``. Both samplers are built here so their loop and keyword parameters
    (which ``SamplerDecl.params`` reads from the signature) are written once."""

    def sample(
        model: Denoiser,
        noise: Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int = 1000,
        sde: str = "native",
        eps: float | None = None,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
    ) -> SampleResult:
        process = resolve_sde(model, sde, beta_min, beta_max)
        x = noise * process.prior_std()
        x_mean = x
        for t in _time_grid(process, steps, eps, noise.device):
            x, x_mean = _reverse_sde_step(model, process, x, t, -1.0 / steps, generator, ode=ode)
        return SampleResult(x=x_mean, nfe=steps)  # the ODE's step returns x as its mean: the same tensor

    # a module-level name, so the function pickles by reference (Ray ships trials' callables) and reads as itself
    sample.__name__ = sample.__qualname__ = name
    sample.__doc__ = doc
    return sample


euler_maruyama = _reverse_euler(
    ode=False,
    name="euler_maruyama",
    doc="""Euler–Maruyama on the reverse SDE (score-SDE ``EulerMaruyamaPredictor``): dt = -1/N at every grid point,
    x_mean = x + [f - g^2 s] dt, x = x_mean + g sqrt(|dt|) z; x_1 ~ N(0, prior_std^2). NFE = N.""",
)
probability_flow_euler = _reverse_euler(
    ode=True,
    name="probability_flow_euler",
    doc="""Euler on the probability-flow ODE dx/dt = f - 1/2 g^2 s (Song et al. Eq. 13): score-SDE's Euler predictor
    with ``probability_flow=True`` (dt = -1/N, no noise). Deterministic given the initial noise. NFE = N.""",
)


def _discrete_index(t: Tensor, steps: int) -> int:
    """score-SDE's ``(t * (N - 1) / T).long()``, in float64 (the float32 original can floor one index low near t=1)."""
    return int(torch.floor(t * (steps - 1) + 1e-9))


def _reverse_diffusion(
    model: Denoiser, sde: SDE, x: Tensor, t: Tensor, steps: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Reverse-diffusion predictor (Song et al. Eq. 46): x_mean = x - f_i + G_i^2 s, x = x_mean + G_i z, with the
    forward discretisation VP: f_i = (sqrt(1 - beta_i) - 1) x, G_i = sqrt(beta_i); VE: f_i = 0,
    G_i = sqrt(sigma_i^2 - sigma_{i-1}^2), sigma_{-1} = 0."""
    i = _discrete_index(t, steps)
    if sde.kind == "vp":
        beta = float(sde.discrete_betas(steps)[i])
        f, G = ((1 - beta) ** 0.5 - 1) * x, beta**0.5
    else:
        sigmas = sde.discrete_sigmas(steps)
        f, G = torch.zeros_like(x), float(sigmas[i] ** 2 - (sigmas[i - 1] ** 2 if i > 0 else 0.0)) ** 0.5
    x_mean = x - f + G**2 * score(model, sde, x, t)
    return x_mean + G * randn_like(x, generator), x_mean


def _langevin_corrector(
    model: Denoiser, sde: SDE, x: Tensor, t: Tensor, steps: int, snr: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Langevin corrector (Song et al. Alg. 4–5): eps = 2 alpha (r ||z|| / ||s||)^2 with batch-mean L2 norms
    (so samples in one batch are coupled, as the reference), alpha = 1 - beta_i (VP) or 1 (VE)."""
    alpha = 1 - float(sde.discrete_betas(steps)[_discrete_index(t, steps)]) if sde.kind == "vp" else 1.0
    grad = score(model, sde, x, t)
    z = randn_like(x, generator)
    grad_norm = grad.reshape(x.shape[0], -1).norm(dim=-1).mean()
    noise_norm = z.reshape(x.shape[0], -1).norm(dim=-1).mean()
    # A zero score (e.g. an untrained net with a zero-initialised output layer) would give an infinite step in the
    # reference; take no corrector step then.
    step = 2 * alpha * (snr * noise_norm / grad_norm) ** 2 if grad_norm > 0 else torch.zeros((), dtype=x.dtype)
    x_mean = x + step * grad
    return x_mean + (2 * step) ** 0.5 * z, x_mean


def predictor_corrector(
    model: Denoiser,
    noise: Tensor,
    *,
    generator: torch.Generator | None = None,
    steps: int = 1000,
    snr: float = 0.16,
    corrector_steps: int = 1,
    predictor: str = "reverse_diffusion",
    sde: str = "native",
    eps: float | None = None,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
) -> SampleResult:
    """PC sampling (Song et al. Alg. 2–3) as ``get_pc_sampler``: at each t the corrector runs *before* the
    predictor (REFERENCE pitfall 8). Predictor: ``reverse_diffusion`` or ``euler_maruyama``; corrector: Langevin
    with signal-to-noise ratio ``snr`` (0 corrector steps = predictor only). NFE = N (corrector_steps + 1)."""
    process = resolve_sde(model, sde, beta_min, beta_max)
    if process.kind == "vp" and process.beta_max / steps >= 1:
        # beta_i = linspace(beta_min/N, beta_max/N, N) must stay below 1 for sqrt(1 - beta_i) to exist
        raise ValueError(f"VP predictor-corrector needs steps > beta_max ({process.beta_max}), got {steps}")
    x = noise * process.prior_std()
    x_mean = x
    for t in _time_grid(process, steps, eps, noise.device):
        for _ in range(corrector_steps):
            x, x_mean = _langevin_corrector(model, process, x, t, steps, snr, generator)
        if predictor == "reverse_diffusion":
            x, x_mean = _reverse_diffusion(model, process, x, t, steps, generator)
        elif predictor == "euler_maruyama":
            x, x_mean = _reverse_sde_step(model, process, x, t, -1.0 / steps, generator, ode=False)
        else:
            raise ValueError(f"unknown predictor {predictor!r}; allowed: reverse_diffusion, euler_maruyama")
    return SampleResult(x=x_mean, nfe=steps * (corrector_steps + 1))
