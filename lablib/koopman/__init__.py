"""Track 2: Koopman operators, which make nonlinear dynamics linear on the right observables.

A dynamical system x_{k+1} = F(x_k) is nonlinear in x, but its Koopman operator, acting on
observables g by (K g)(x) = g(F(x)), is linear. Find a few observables whose span K maps into
itself and the dynamics become a matrix: eigenvalues, modes, forecasts by matrix powers.

Modules (NumPy/SciPy for the linear algebra, PyTorch for learned models):

* ``systems``: simulators with fixed seeds: ``LinearSystem`` (chosen eigenvalues),
  ``FiniteKoopmanMap`` (exact finite Koopman subspace), ``Pendulum``, ``Duffing``,
  ``ForcedDuffing``, ``VanDerPol``, ``Lorenz63``; ``integrate_rk4`` (fixed-step RK4).
  Trajectories are (n_traj, T + 1, n_state).
* ``dmd``: exact ``DMD`` (snapshots as columns, (n_features, m)); ``snapshot_pairs``.
* ``edmd``: ``EDMD`` (samples as rows, (m, n_state)) with dictionaries ``MonomialDictionary``,
  ``RBFDictionary``, ``RandomFourierDictionary``, ``FunctionDictionary``.
* ``autoencoder``: ``KoopmanAutoencoder`` (learned observables, linear latent K),
  ``MLPStepModel`` (nonlinear baseline), ``train_koopman_autoencoder``, ``train_step_model``,
  ``save_checkpoint`` / ``load_checkpoint``.
* ``control``: ``DMDc`` and ``LiftedControlModel`` (z' = K z + B u on a dictionary or an
  autoencoder's encoder via ``encoder_lift``).
* ``recurrence``: the bridge to SSMs: ``diagonal_recurrence_loop`` (h_t = lambda h_{t-1} + v_t)
  and ``diagonal_recurrence_scan`` (Hillis-Steele / Blelloch parallel scans), ``discretize_diagonal``.
* ``metrics``: ``forecast_rmse``.
* ``compare``: ``compare_forecasts`` (EDMD vs Koopman autoencoder vs MLP on one system) and the
  command that trains the chapter's checkpoint: ``python -m lablib.koopman.compare --help``.

Conventions: DMD-family methods take snapshot matrices with one snapshot per **column**
(as in the DMD literature and PyDMD); EDMD and the lifted models take one sample per **row**
(as in Williams et al. 2015). ``snapshot_pairs(traj, layout="rows" | "columns")`` makes either.
Eigenvalues are returned sorted by decreasing modulus, then angle.
"""

from lablib.koopman.autoencoder import (
    KoopmanAutoencoder,
    MLPStepModel,
    load_checkpoint,
    save_checkpoint,
    train_koopman_autoencoder,
    train_step_model,
)
from lablib.koopman.control import DMDc, LiftedControlModel, decoder_readout, encoder_lift
from lablib.koopman.dmd import DMD, snapshot_pairs, sort_eigenvalues
from lablib.koopman.edmd import (
    EDMD,
    Dictionary,
    FunctionDictionary,
    MonomialDictionary,
    RandomFourierDictionary,
    RBFDictionary,
)
from lablib.koopman.metrics import forecast_rmse
from lablib.koopman.recurrence import (
    diagonal_recurrence_loop,
    diagonal_recurrence_scan,
    discretize_diagonal,
)
from lablib.koopman.systems import (
    Duffing,
    DynamicalSystem,
    FiniteKoopmanMap,
    ForcedDuffing,
    LinearSystem,
    Lorenz63,
    Pendulum,
    VanDerPol,
    integrate_rk4,
    rk4_step,
)

__all__ = [
    "DMD",
    "DMDc",
    "Dictionary",
    "Duffing",
    "DynamicalSystem",
    "EDMD",
    "FiniteKoopmanMap",
    "ForcedDuffing",
    "FunctionDictionary",
    "KoopmanAutoencoder",
    "LiftedControlModel",
    "LinearSystem",
    "Lorenz63",
    "MLPStepModel",
    "MonomialDictionary",
    "Pendulum",
    "RBFDictionary",
    "RandomFourierDictionary",
    "VanDerPol",
    "decoder_readout",
    "diagonal_recurrence_loop",
    "diagonal_recurrence_scan",
    "discretize_diagonal",
    "encoder_lift",
    "forecast_rmse",
    "integrate_rk4",
    "load_checkpoint",
    "rk4_step",
    "save_checkpoint",
    "snapshot_pairs",
    "sort_eigenvalues",
    "train_koopman_autoencoder",
    "train_step_model",
]
