"""``ContrastiveDecoder``: the contrastive brain decoder as a scikit-learn estimator.

A lab script can do ``ContrastiveDecoder().fit(X, Y).predict(X_test)`` with plain arrays
(trials x voxels, or trials x channels x times, -> trials x embedding dim), for one
subject or several (a list of per-subject arrays with their names). Internally it builds
a :class:`~braindecode_kit.models.DecoderConfig` (one
:class:`~braindecode_kit.models.SubjectSpec` per subject, from its array's shape) and a
:class:`~braindecode_kit.train.TrainConfig` and calls :func:`braindecode_kit.train.fit`,
holding out a seeded share of the stimuli for early stopping.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from ._checks import check_option
from ._docs import fill_doc
from .baselines import RETRIEVAL_WHITEN
from .evaluate.retrieval import percentile_rank, percentile_ranks, row_cosine

__all__ = ["ANCHOR_RIDGE", "ANCHOR_WEIGHTS", "SEARCHABLE", "ContrastiveDecoder", "blend_predictions",
           "choose_anchor_weight"]

#: weights of the network against the ridge tried by ``ridge_anchor`` (0: the ridge alone,
#: inf: the network alone)
ANCHOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, float("inf"))
#: the settings of the ridge a prediction is anchored to (``anchor_ridge=None``): a ridge
#: chosen for retrieval, alpha and target whitening by cross-validated percentile rank
#: (``benchmarks/robustness.py``: the MSE-chosen alpha is too small for retrieval at
#: NSD-like noise, and whitening helps where the embedding's variance is uneven)
ANCHOR_RIDGE = {"scoring": "rank", "whiten": RETRIEVAL_WHITEN}
#: the fewest validation (and training) stimuli the anchor's choice is made on
MIN_ANCHOR_STIMULI = 10
#: the parameters ``search`` may choose (those of the network and its training)
SEARCHABLE = ("d_shared", "n_blocks", "dropout", "adapter_dropout", "epochs", "lr",
              "weight_decay", "adapter_weight_decay", "temperature", "mse_weight",
              "schedule", "batch_size")


def _plain(v: Any) -> Any:
    """A float, or a list of them (one alpha per target)."""
    v = np.asarray(v, dtype=float)
    return float(v) if v.ndim == 0 else v.tolist()


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def blend_predictions(ridge_pred: np.ndarray, net_pred: np.ndarray, weight: float) -> np.ndarray:
    """The ridge-anchored prediction ``unit(ridge) + weight * unit(network)`` (``inf``: the
    network alone, unit-normalised; 0: the ridge alone)."""
    if np.isinf(weight):
        return _unit(net_pred)
    return _unit(ridge_pred) + weight * _unit(net_pred)


def choose_anchor_weight(ridge_val: np.ndarray, net_val: np.ndarray, truth: np.ndarray,
                         weights: tuple[float, ...] = ANCHOR_WEIGHTS,
                         criterion: str = "rank", rule: str = "best",
                         ) -> tuple[float, dict[str, float]]:
    """The weight of the network against a ridge that identifies validation stimuli best.

    Parameters
    ----------
    ridge_val, net_val : ndarray (n_stimuli, d)
        The ridge's and the network's predictions of validation stimuli that neither was
        trained on (repetitions averaged).
    truth : ndarray (n_stimuli, d)
        Their true embeddings.
    weights : tuple of float
        Candidates, in increasing order (0: the ridge alone, ``inf``: the network alone).
    criterion : {"rank", "cosine"}
        ``"rank"``: the mean percentile rank of the true stimulus among the others
        (retrieval); ``"cosine"``: the mean cosine of the prediction to the true embedding
        (what a captioner or generator fed the prediction needs).
    rule : {"best", "one_se"}
        ``"best"``: the best-scoring weight (ties go to the larger weight).
        ``"one_se"``: the one-standard-error rule (Breiman's, glmnet's ``lambda.1se``):
        the smallest weight — the one closest to the ridge — whose mean score is within
        one standard error of the best's, the error of the mean paired per-stimulus
        difference; the anchor then leaves the ridge only where validation supports it
        beyond its noise.

    Returns
    -------
    weight, scores
        The chosen weight and the criterion of every candidate (keys ``str(weight)``).
    """
    check_option("criterion", criterion, ("rank", "cosine"))
    check_option("rule", rule, ("best", "one_se"))
    per_item = ((lambda p: percentile_ranks(p, truth)) if criterion == "rank" else
                (lambda p: np.asarray(row_cosine(p, truth), np.float64)))
    items = {w: per_item(blend_predictions(ridge_val, net_val, w)) for w in weights}
    scores = {w: float(v.mean()) for w, v in items.items()}
    best = max(scores.values())
    weight = [w for w in weights if scores[w] == best][-1]
    if rule == "one_se":
        for w in sorted(weights):
            diff = items[weight] - items[w]
            se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
            if diff.mean() <= se:
                weight = w
                break
    return float(weight), {str(w): v for w, v in scores.items()}


@fill_doc
class ContrastiveDecoder(BaseEstimator):
    """Per-subject adapters + a shared residual MLP trained contrastively (InfoNCE).

    ``X`` is 2-D ``(n_trials, n_features)`` (fMRI voxels) or 3-D
    ``(n_trials, n_channels, n_times)`` (MEG/sEEG epochs); each subject's
    :class:`~braindecode_kit.models.SubjectSpec` takes its per-trial shape from its array
    (the linear and MLP adapters flatten 3-D trials).

    Parameters
    ----------
    d_shared : int
        Width of the shared space.
    n_blocks : int
        Residual blocks of the shared encoder.
    adapter : str
        Per-subject adapter kind (a registered name: ``"linear"``, ``"mlp"``; for 3-D
        ``X``, ``"channel_linear"`` with ``encoder="conv"``).
    encoder : str
        Shared encoder kind (``"mlp"``; ``"conv"`` for sequence adapters).
    dropout : float
        Dropout in the shared encoder.
    adapter_dropout : float
        Dropout on the input features.
    epochs : int
        Maximum training epochs.
    batch_size : int
        Trials per step (balanced over subjects).
    lr : float
        Peak learning rate (AdamW, OneCycle).
    weight_decay, adapter_weight_decay : float
        AdamW weight decay of the shared part and of the adapters.
    schedule : {"infonce", "mindeye", "softclip", "bimixco", "mse"}
        Contrastive loss kind (see :class:`~braindecode_kit.train.TrainConfig`).
    temperature : float
        InfoNCE temperature.
    mse_weight : float
        Weight of an added MSE term (0: contrastive only).
    val_fraction : float
        Share of each subject's stimuli (distinct rows of Y) held out of training: for
        early stopping and (``ridge_anchor``, half of them) for the anchor's choice;
        0 trains on everything for ``epochs`` epochs.
    patience : int or None
        Early-stopping patience in epochs.
    mixed_precision : {"no", "bf16", "fp16"}
        Autocast precision.
    seed : int
        Seeds initialisation, the validation split and training.
    train_kwargs : dict or None
        Further :class:`~braindecode_kit.train.TrainConfig` fields.
    decoder_kwargs : dict or None
        Further :class:`~braindecode_kit.models.DecoderConfig` fields (e.g.
        ``conv_width``).
    modality : {"fmri", "meg", "seeg"} or None
        The subjects' recording kind, kept in their specs; None: ``"fmri"`` for 2-D
        ``X`` and ``"meg"`` for 3-D ``X`` (MEG and sEEG arrays train the same network).
    ridge_anchor : bool
        Start from what a linear decoder already knows and keep what validation supports:
        a :class:`~braindecode_kit.RidgeDecoder` is fitted on the same training stimuli,
        and each subject's prediction is ``unit(ridge) + w * unit(network)`` with the
        weight ``w`` in :data:`ANCHOR_WEIGHTS` (``0``: ridge alone, ``inf``: the network
        alone) chosen on the held-out validation stimuli (never on test data) by the
        mean percentile rank of the true stimulus. The ridge is then refitted on all
        training trials. Needs ``val_fraction > 0``; without enough validation stimuli
        the network is used alone (logged).
    anchor_ridge : dict or None
        The settings of that ridge (:class:`~braindecode_kit.RidgeDecoder` parameters).
        ``None``: :data:`ANCHOR_RIDGE`, a ridge chosen for retrieval (alpha and the
        whitening of its predictions by cross-validated percentile rank, grouped by
        stimulus); ``{}``: the plain ridge of the decoding literature (alpha by squared
        error), the baseline the decoder is compared with.
    anchor_rule : {"one_se", "best"}
        How the anchor's weight is chosen (see :func:`choose_anchor_weight`):
        ``"one_se"`` keeps the weight closest to the ridge whose validation score is
        within one standard error of the best (the starting point is kept unless the
        network beats it beyond the validation noise); ``"best"``: the best score.
    search : dict of str to list, or None
        Settings chosen by inner validation, as :class:`~sklearn.linear_model.RidgeCV`
        chooses alpha: every combination of the lists (a grid; keys from
        :data:`SEARCHABLE`, e.g. ``{"d_shared": [64, 256], "temperature": [0.05, 0.1]}``)
        is trained on the training stimuli, early-stopped on one half of the validation
        stimuli and scored on the other half (mean percentile rank of the true stimulus,
        repetitions averaged, mean over subjects); the best is kept (ties: the one tried
        first). The estimator's own values are tried first, so a search can only replace
        them when validation supports it. The ridge anchor's weight is then chosen on that
        same half. Needs ``val_fraction > 0`` and at least ``2 * MIN_ANCHOR_STIMULI``
        validation stimuli per subject. ``None``: no search.
    search_budget_s : float or None
        Stop trying combinations once this many seconds of the search have passed (the
        first, the estimator's own values, is always trained); ``None``: no limit.
    %(verbose)s

    Attributes
    ----------
    decoder_ : BrainDecoder
        The trained model.
    subjects_ : list of str
        The subjects seen in fit, in order.
    feature_shapes_ : dict of str to tuple of int
        Each subject's per-trial shape (``(n_features,)`` or ``(n_channels, n_times)``).
    n_features_in_ : int
        Number of values per trial (``n_features``, or ``n_channels * n_times`` for 3-D
        ``X``, as :class:`~braindecode_kit.RidgeDecoder` flattens them), when every
        subject has the same per-trial shape.
    embed_dim_ : int
        Target dimension.
    history_ : list of dict
        Per-epoch training history.
    anchor_ : dict of str to dict
        Per subject (``ridge_anchor=True``): the chosen weight ``w``, the validation
        score of every weight tried and the number of validation stimuli.
    ridges_ : dict of str to RidgeDecoder
        Per subject, the ridge the prediction is anchored to (empty without the anchor).
    search_results_ : list of dict
        With ``search``: per combination tried, in order, its ``params``, validation
        ``score``, ``best_epoch`` and ``seconds`` (also logged).
    best_params_ : dict
        With ``search``: the chosen combination (the model was trained with it).

    Examples
    --------
    >>> est = ContrastiveDecoder().fit(X_train, Y_train)
    >>> Y_pred = est.predict(X_test)
    >>> est.score(X_test, Y_test)  # top-1 retrieval among up to 300 candidates
    """

    def __init__(
        self,
        d_shared: int = 256,
        n_blocks: int = 2,
        adapter: str = "linear",
        encoder: str = "mlp",
        dropout: float = 0.15,
        adapter_dropout: float = 0.5,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        adapter_weight_decay: float = 0.5,
        schedule: str = "infonce",
        temperature: float = 0.05,
        mse_weight: float = 0.0,
        val_fraction: float = 0.2,
        patience: int | None = 8,
        mixed_precision: str = "no",
        seed: int = 0,
        train_kwargs: dict | None = None,
        decoder_kwargs: dict | None = None,
        modality: str | None = None,
        ridge_anchor: bool = True,
        anchor_ridge: dict | None = None,
        anchor_rule: str = "one_se",
        search: dict | None = None,
        search_budget_s: float | None = None,
        verbose: bool | str | int | None = None,
    ) -> None:
        self.d_shared = d_shared
        self.n_blocks = n_blocks
        self.adapter = adapter
        self.encoder = encoder
        self.dropout = dropout
        self.adapter_dropout = adapter_dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.adapter_weight_decay = adapter_weight_decay
        self.schedule = schedule
        self.temperature = temperature
        self.mse_weight = mse_weight
        self.val_fraction = val_fraction
        self.patience = patience
        self.mixed_precision = mixed_precision
        self.seed = seed
        self.train_kwargs = train_kwargs
        self.decoder_kwargs = decoder_kwargs
        self.modality = modality
        self.ridge_anchor = ridge_anchor
        self.anchor_ridge = anchor_ridge
        self.anchor_rule = anchor_rule
        self.search = search
        self.search_budget_s = search_budget_s
        self.verbose = verbose

    # ------------------------------------------------------------------ input
    def _split_X(self, X: Any, subjects: Any, fitted: bool) -> list[tuple[str, np.ndarray, Any]]:
        """-> [(subject, X_s, row_index_or_None)] validated 2-D or 3-D float arrays."""
        if isinstance(X, (list, tuple)):
            if subjects is None:
                subjects = [f"sub-{i}" for i in range(len(X))]
            if isinstance(subjects, str) or len(subjects) != len(X):
                raise ValueError(
                    "subjects must be a list of names, one per array of X: got "
                    f"{subjects!r} for {len(X)} arrays."
                )
            if len(set(map(str, subjects))) != len(subjects):
                raise ValueError(f"subjects must be unique, but got {list(subjects)!r}.")
            return [(str(s), self._check_X(x, f"X[{i}]"), None)
                    for i, (s, x) in enumerate(zip(subjects, X))]
        Xa = self._check_X(X, "X")
        if subjects is None:
            if fitted and len(self.subjects_) != 1:
                raise ValueError(
                    f"subjects must be given: this decoder was fitted on {self.subjects_}."
                )
            return [(self.subjects_[0] if fitted else "sub-0", Xa, None)]
        if isinstance(subjects, str):
            return [(subjects, Xa, None)]
        labels = np.asarray(subjects).astype(str)
        if labels.shape != (Xa.shape[0],):
            raise ValueError(
                "subjects must be None, a name, a list of names (one per array of X) or one "
                f"label per row of X ({Xa.shape[0]}), but got shape {labels.shape}."
            )
        out = []
        for s in dict.fromkeys(labels.tolist()):
            rows = np.flatnonzero(labels == s)
            out.append((s, Xa[rows], rows))
        return out

    @staticmethod
    def _check_X(X: Any, name: str) -> np.ndarray:
        Xa = check_array(X, dtype=np.float32, ensure_2d=True, allow_nd=True, input_name=name,
                         ensure_min_samples=2)
        if Xa.ndim > 3:
            raise ValueError(
                f"{name} must be 2-D (n_trials, n_features) or 3-D (n_trials, n_channels, "
                f"n_times), but got shape {Xa.shape}."
            )
        return Xa

    def _spec(self, x: np.ndarray):
        """The SubjectSpec of one subject's array (its per-trial shape)."""
        from .models import SubjectSpec

        modality = self.modality
        if modality is None:
            modality = "fmri" if x.ndim == 2 else "meg"
        check_option("modality", modality, ("fmri", "meg", "seeg"))
        return SubjectSpec(modality, tuple(x.shape[1:]))

    @staticmethod
    def _check_Y(Y: Any, n: int, name: str = "Y") -> np.ndarray:
        Ya = np.asarray(Y)
        if Ya.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D array (n_trials, embedding_dim) of target embeddings, "
                f"but got shape {Ya.shape}."
            )
        Ya = check_array(Ya, dtype=np.float32, input_name=name)
        if Ya.shape[0] != n:
            raise ValueError(f"{name} has {Ya.shape[0]} rows but X has {n} trials.")
        return Ya

    def _split_Y(self, Y: Any, parts: list[tuple[str, np.ndarray, Any]]) -> list[np.ndarray]:
        if isinstance(Y, (list, tuple)):
            if len(Y) != len(parts):
                raise ValueError(f"Y must be a list aligned with X: {len(Y)} vs {len(parts)}.")
            return [self._check_Y(y, x.shape[0], f"Y[{i}]") for i, (y, (_, x, _)) in
                    enumerate(zip(Y, parts))]
        n = sum(x.shape[0] for _, x, _ in parts)
        Ya = self._check_Y(Y, n)
        if parts[0][2] is None:
            return [Ya]
        return [Ya[rows] for _, _, rows in parts]

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any, subjects: Any = None) -> ContrastiveDecoder:
        """Train the decoder.

        Parameters
        ----------
        X : array (n_trials, n_features) or (n_trials, n_channels, n_times), or list
            Brain data; a list holds one array per subject (their shapes may differ).
        Y : array (n_trials, embedding_dim) or list of arrays
            Target embeddings aligned with X's rows (repeated stimuli: identical rows).
        subjects : None, str, list of str or array of labels
            Subject names for a list X, a name for one array, or one label per row.

        Returns
        -------
        self
        """
        from .models import BrainDecoder, DecoderConfig
        from .train import TrainConfig, fit

        check_option("anchor_rule", self.anchor_rule, ("one_se", "best"))
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), but got {self.val_fraction!r}.")
        parts = self._split_X(X, subjects, fitted=False)
        Ys = self._split_Y(Y, parts)
        dims = {y.shape[1] for y in Ys}
        if len(dims) != 1:
            raise ValueError(f"All Y arrays must have the same dimension, got {sorted(dims)}.")
        embed_dim = dims.pop()
        grid = self._search_grid()
        subjects_spec = {s: self._spec(x) for s, x, _ in parts}

        def configs(p: dict[str, Any]):
            dcfg = DecoderConfig(
                subjects=subjects_spec, embed_dim=embed_dim,
                adapter=self.adapter, d_shared=p["d_shared"], n_blocks=p["n_blocks"],
                dropout=p["dropout"], adapter_dropout=p["adapter_dropout"],
                encoder=self.encoder, **(self.decoder_kwargs or {}),
            )
            tcfg = TrainConfig(
                epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                weight_decay=p["weight_decay"], adapter_weight_decay=p["adapter_weight_decay"],
                schedule=p["schedule"], temperature=p["temperature"],
                mse_weight=p["mse_weight"], patience=self.patience,
                mixed_precision=self.mixed_precision, seed=self.seed,
                **(self.train_kwargs or {}),
            )
            return dcfg, tcfg

        rng = np.random.default_rng(self.seed)
        trainsets, valsets = [], []
        split_of: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # subject -> (held out, selection)
        halves = self.ridge_anchor or grid is not None
        for (s, x, _), y in zip(parts, Ys):
            _, groups = np.unique(y, axis=0, return_inverse=True)
            groups = groups.reshape(-1)
            n_groups = int(groups.max()) + 1
            n_val = int(round(self.val_fraction * n_groups))
            if self.val_fraction > 0 and n_val >= 2 and n_groups - n_val >= 2:
                val_groups = rng.choice(n_groups, n_val, replace=False)
                is_val = np.isin(groups, val_groups)
                stop = is_val
                if halves and n_val >= 2 * MIN_ANCHOR_STIMULI:
                    # two disjoint halves of the validation stimuli: one stops training,
                    # the other chooses the search's settings and the anchor's weight (a
                    # set the network was not early-stopped on)
                    stop = np.isin(groups, val_groups[: n_val // 2])
                    split_of[s] = (is_val, is_val & ~stop)
                trainsets.append((s, x[~is_val], y[~is_val]))
                valsets.append((s, x[stop], y[stop]))
            else:
                trainsets.append((s, x, y))
        if grid is not None:
            short = [s for s, _, _ in parts if s not in split_of]
            if short:
                raise ValueError(
                    f"search needs at least {2 * MIN_ANCHOR_STIMULI} validation stimuli per "
                    f"subject (val_fraction={self.val_fraction} of the distinct rows of Y), "
                    f"but subject(s) {short} have fewer; raise val_fraction or give more "
                    "stimuli.")
            result = self._run_search(grid, configs, trainsets, valsets, parts, Ys, split_of)
        else:
            dcfg, tcfg = configs(self._own_params())
            result = fit(BrainDecoder(dcfg, seed=self.seed), trainsets, None, tcfg,
                         valsets=valsets or None, verbose=self.verbose)
        self.decoder_ = result.decoder
        self.history_ = result.history
        self.anchor_, self.ridges_ = {}, {}
        if self.ridge_anchor:
            for (s, x, _), y in zip(parts, Ys):
                self._fit_anchor(s, x, y, *split_of.get(s, (None, None)))
        self.subjects_ = [s for s, _, _ in parts]
        self.embed_dim_ = int(embed_dim)
        self.feature_shapes_ = {s: tuple(x.shape[1:]) for s, x, _ in parts}
        shapes = set(self.feature_shapes_.values())
        if len(shapes) == 1:
            self.n_features_in_ = int(np.prod(shapes.pop()))
        return self

    # ------------------------------------------------------------------ search
    def _own_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SEARCHABLE}

    def _search_grid(self) -> list[dict[str, Any]] | None:
        """The combinations to try, the estimator's own values first (None: no search)."""
        from sklearn.model_selection import ParameterGrid

        if self.search is None:
            return None
        if not isinstance(self.search, dict) or not self.search:
            raise ValueError("search must be a non-empty dict of parameter -> list of values, "
                             f"got {self.search!r}.")
        unknown = sorted(set(self.search) - set(SEARCHABLE))
        if unknown:
            raise ValueError(f"search cannot choose {unknown}: expected some of {list(SEARCHABLE)}.")
        for k, v in self.search.items():
            if isinstance(v, str) or not hasattr(v, "__len__") or len(v) == 0:
                raise ValueError(f"search[{k!r}] must be a non-empty list of values, got {v!r}.")
        if self.search_budget_s is not None and not float(self.search_budget_s) > 0:
            raise ValueError(f"search_budget_s must be a positive number of seconds or None, "
                             f"got {self.search_budget_s!r}.")
        own = self._own_params()
        combos = [{**own, **c} for c in ParameterGrid(
            {k: list(v) for k, v in self.search.items()})]
        combos.sort(key=lambda c: c != own)  # stable: the estimator's own values first
        if combos[0] != own:
            combos.insert(0, own)
        return combos

    def _selection_score(self, decoder, selection) -> float:
        """Mean over subjects of the validation percentile rank on the selection half
        (``selection``: per subject, its rows, their stimulus groups and averaged truth)."""
        from .splits import average_by_stimulus

        scores = []
        for s, x_sel, g_sel, truth in selection:
            pred, _ = average_by_stimulus(decoder.predict(x_sel, subject=s), g_sel)
            scores.append(percentile_rank(pred, truth))
        return float(np.mean(scores))

    def _run_search(self, grid, configs, trainsets, valsets, parts, Ys, split_of):
        import time

        from ._logging import logger
        from .models import BrainDecoder
        from .splits import average_by_stimulus
        from .train import fit

        selection = []  # the same rows score every combination
        for (s, x, _), y in zip(parts, Ys):
            _, groups = np.unique(y, axis=0, return_inverse=True)
            rows = np.flatnonzero(split_of[s][1])
            g_sel = groups.reshape(-1)[rows]
            selection.append((s, x[rows], g_sel, average_by_stimulus(y[rows], g_sel)[0]))
        start = time.perf_counter()
        best, best_score, self.search_results_ = None, -np.inf, []
        for i, params in enumerate(grid):
            if i and self.search_budget_s is not None and (
                    time.perf_counter() - start) >= float(self.search_budget_s):
                logger.info("search: budget of %.0f s spent after %d of %d combinations",
                            float(self.search_budget_s), i, len(grid))
                break
            t0 = time.perf_counter()
            dcfg, tcfg = configs(params)
            res = fit(BrainDecoder(dcfg, seed=self.seed), trainsets, None, tcfg,
                      valsets=valsets, verbose=self.verbose)
            score = self._selection_score(res.decoder, selection)
            chosen = {k: params[k] for k in self.search}
            self.search_results_.append({
                "params": chosen, "score": score, "best_epoch": res.best_epoch,
                "seconds": time.perf_counter() - t0})
            logger.info("search %d/%d %s: validation percentile rank %.4f (best epoch %s)",
                        i + 1, len(grid), chosen, score, res.best_epoch)
            if score > best_score:
                best, best_score, self.best_params_ = res, score, chosen
        logger.info("search: chose %s (validation percentile rank %.4f)", self.best_params_,
                    best_score)
        return best

    # ------------------------------------------------------------------ ridge anchor
    def _fit_anchor(self, subject: str, x: np.ndarray, y: np.ndarray,
                    held: np.ndarray | None, sel: np.ndarray | None) -> None:
        """Choose the weight of the network against a ridge on the selection stimuli.

        ``held``: the rows the network did not train on; ``sel``: those of them it was
        not early-stopped on either (the anchor's choice is made there).
        """
        from ._logging import logger
        from .baselines import RidgeDecoder
        from .splits import average_by_stimulus

        _, groups = np.unique(y, axis=0, return_inverse=True)
        groups = groups.reshape(-1)
        n_val = 0 if sel is None else len(np.unique(groups[sel]))
        n_fit = 0 if held is None else len(np.unique(groups[~held]))
        if n_val < MIN_ANCHOR_STIMULI or n_fit < MIN_ANCHOR_STIMULI:
            logger.info("ridge anchor of %s skipped: %d validation and %d training stimuli "
                        "(at least %d each needed); the network is used alone.",
                        subject, n_val, n_fit, MIN_ANCHOR_STIMULI)
            self.anchor_[subject] = {"weight": float("inf"), "scores": {},
                                     "rule": self.anchor_rule, "n_val_stimuli": n_val,
                                     "skipped": True}
            return
        flat = x.reshape(len(x), -1)
        settings = ANCHOR_RIDGE if self.anchor_ridge is None else self.anchor_ridge
        if not isinstance(settings, dict):
            raise ValueError(f"anchor_ridge must be a dict of RidgeDecoder parameters or None, "
                             f"got {settings!r}.")
        # the same training stimuli as the network's
        ridge = RidgeDecoder(**settings).fit(flat[~held], y[~held], groups=groups[~held])
        vals = np.flatnonzero(sel)
        r_val, uniq = average_by_stimulus(ridge.predict(flat[vals]), groups[vals])
        d_val, _ = average_by_stimulus(self.decoder_.predict(x[vals], subject=subject),
                                       groups[vals])
        truth, _ = average_by_stimulus(y[vals], groups[vals])
        weight, scores = choose_anchor_weight(r_val, d_val, truth, rule=self.anchor_rule)
        self.ridges_[subject] = RidgeDecoder(**settings).fit(flat, y, groups=groups)
        self.anchor_[subject] = {"weight": weight, "scores": scores, "rule": self.anchor_rule,
                                 "n_val_stimuli": int(len(uniq)), "skipped": False,
                                 "ridge": {"alpha": _plain(self.ridges_[subject].alpha_),
                                           "whiten": self.ridges_[subject].whiten_}}
        logger.info("ridge anchor of %s: weight %s (validation percentile rank %.4f; ridge "
                    "alone %.4f, network alone %.4f, %d stimuli)", subject, weight,
                    scores[str(weight)], scores["0.0"], scores["inf"], len(uniq))

    # ------------------------------------------------------------------ predict
    def predict(self, X: Any, subjects: Any = None) -> np.ndarray:
        """Predicted embeddings ``(n_trials, embedding_dim)`` (float32).

        Parameters
        ----------
        X : array (n_trials, n_features) or (n_trials, n_channels, n_times), or list
            As in :meth:`fit`: each subject's trials must have the shape seen in fit.
        subjects : None, str, list of str or array of labels
            As in :meth:`fit`; None for a decoder fitted on one subject.

        Returns
        -------
        ndarray, float32, shape (n_trials, embedding_dim)
            A list of arrays gives their predictions concatenated in order; per-row labels
            keep the rows' order.
        """
        check_is_fitted(self, "decoder_")
        parts = self._split_X(X, subjects, fitted=True)
        for s, _, _ in parts:
            if s not in self.subjects_:
                raise ValueError(
                    f"Unknown subject {s!r}: this decoder was fitted on {self.subjects_}."
                )
        preds = [self._predict_one(s, x) for s, x, _ in parts]
        if parts[0][2] is None:
            return np.concatenate(preds)
        out = np.empty((sum(len(p) for p in preds), self.embed_dim_), np.float32)
        for (_, _, rows), p in zip(parts, preds):
            out[rows] = p
        return out

    def _predict_one(self, subject: str, x: np.ndarray) -> np.ndarray:
        pred = self.decoder_.predict(x, subject=subject)
        ridge = getattr(self, "ridges_", {}).get(subject)
        weight = getattr(self, "anchor_", {}).get(subject, {}).get("weight", float("inf"))
        if ridge is None or np.isinf(weight):
            return pred
        return blend_predictions(ridge.predict(x.reshape(len(x), -1)), pred, weight).astype(np.float32)

    def score(self, X: Any, Y: Any, subjects: Any = None) -> float:
        """Top-1 retrieval (brain->image) among ``min(300, n_stimuli)`` candidates.

        Predictions of identical target rows (repetitions of a stimulus) are averaged
        first, as MindEye2 averages its test repetitions; 30 random candidate draws
        (seed 0) by :func:`braindecode_kit.evaluate.retrieval_accuracy`.

        Parameters
        ----------
        X, subjects
            As in :meth:`predict`.
        Y : array (n_trials, embedding_dim) or list of arrays
            The true target embeddings, aligned with X's rows.

        Returns
        -------
        float
            The mean top-1 accuracy over the draws (chance: 1 / n_candidates).
        """
        from .evaluate import retrieval_accuracy
        from .splits import average_by_stimulus

        pred = self.predict(X, subjects)
        if isinstance(Y, (list, tuple)):
            Ya = np.concatenate(self._split_Y(Y, self._split_X(X, subjects, fitted=True)))
        else:
            Ya = self._check_Y(Y, pred.shape[0])
        table, groups = np.unique(Ya, axis=0, return_inverse=True)
        avg, uniq = average_by_stimulus(pred, groups.reshape(-1))
        if len(uniq) < 2:
            raise ValueError("score needs at least 2 distinct target rows.")
        res = retrieval_accuracy(avg, table[uniq], k=1, n_candidates=min(300, len(avg)),
                                 n_draws=30, seed=0, direction="brain->image")
        return float(res["top1"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.non_deterministic = False
        return tags
