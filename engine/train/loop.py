"""The proxy training loop: mixture sampling, AdamW with warmup + cosine, evaluation, checkpoints.

One run = one :class:`TrainSpec`. Every optimiser step draws ``batch_size``
sequences; each sequence's domain is drawn from the step's mixture (static
``p``, uniform for ``stratified``, or Aioli's current proportions), its offset
uniformly inside that domain's training tokens. At ``evals`` evenly spaced
points the per-domain validation loss (nats/token on fixed held-out windows) is
written to the store, then (at most every ``checkpoint_seconds``) a checkpoint is
saved (model, optimiser, every RNG, the sampler and the mixing policy), so
``resume`` continues bit-for-bit where the last checkpoint left off.

Evaluation costs a fixed share of the run: all evaluations together read
``eval_share`` x the training tokens (forward only, so about a third of that in
compute), spread over the domains' held-out windows. Each evaluation's log line
carries the mean training loss since the previous one, tokens/s and, on CUDA,
model FLOPs utilisation; the training-loss curve is stored on the run
(``provenance["train_loss"]``: ``[tokens_seen, loss]`` pairs) beside the
validation measurements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.config import Settings
from engine.errors import InputError, TrainError
from engine.ingest.validate import Where, normalise_mixture, parse_share
from engine.train import records
from engine.train.aioli import AioliOptions, AioliPolicy
from engine.train.data import PreparedData, open_tokens, read_prepared
from engine.train.model import GPT, config_for, next_token_loss

log = logging.getLogger(__name__)

METHODS = ("static", "stratified", "aioli")


@dataclass(frozen=True)
class TrainSpec:
    """Everything that defines one proxy run (JSON-able; stored on the run's provenance).

    mixture: {domain: share} for ``static``; ignored (uniform start) for ``stratified``/``aioli``.
    tokens: training budget in tokens (steps = ceil(tokens / (batch_size * seq_len))).
    evals: number of evenly spaced evaluations (10 = every 10% of the run; 0 = none, no losses recorded).
    eval_share: evaluated tokens over all evaluations / training tokens; sets the windows per evaluation.
    eval_sequences: held-out windows of seq_len tokens per domain at each evaluation; None derives it from
        ``eval_share`` (at least one window a domain, at most what the held-out slice holds).
    device: 'auto' (CUDA with bf16 autocast when present, else CPU), 'cpu' or 'cuda'.
    compile: wrap the model in torch.compile (CUDA mostly; slow to start on CPU).
    threads: torch intra-op threads (None = torch's default).
    checkpoint_seconds: save a checkpoint at an evaluation only if this long has passed since the
        last one (0 = at every evaluation). A resume from an older checkpoint recomputes the
        evaluations after it and rewrites the same values, so nothing is lost but time.
    """

    project: str
    data_dir: str
    name: str
    tokens: int
    mixture: dict[str, float] = field(default_factory=dict)
    method: str = "static"
    model: str = "tiny"
    seq_len: int = 128
    batch_size: int = 8
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_fraction: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    evals: int = 10
    eval_share: float = 0.1
    eval_sequences: int | None = None
    aioli: AioliOptions = field(default_factory=AioliOptions)
    device: str = "auto"
    compile: bool = False
    threads: int | None = None
    heartbeat_seconds: float = 5.0
    checkpoint_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"unknown method '{self.method}'.", hint=f"use one of: {', '.join(METHODS)}.")
        if self.tokens < self.batch_size * self.seq_len:
            raise InputError(
                f"--tokens {self.tokens} is less than one batch ({self.batch_size} x {self.seq_len} tokens).",
                hint="raise --tokens, e.g. --tokens 1M.",
            )
        if self.evals < 0 or (self.eval_sequences is not None and self.eval_sequences < 1):
            raise InputError("--evals must be at least 0 and the evaluation windows at least 1.")
        if not 0 < self.eval_share <= 1:
            raise InputError(f"eval_share={self.eval_share} is outside (0, 1].", hint="use e.g. 0.1 (10%).")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"unknown device '{self.device}'.", hint="use auto, cpu or cuda.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "TrainSpec":
        return cls(**{**doc, "aioli": AioliOptions(**doc.get("aioli", {}))})

    def fingerprint(self) -> str:
        """What makes two specs the same run (not where or how fast it runs)."""
        keep = {k: v for k, v in self.to_dict().items()
                if k not in ("device", "compile", "threads", "heartbeat_seconds", "checkpoint_seconds", "data_dir")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TrainResult:
    run_id: int | None
    status: str  # complete | skipped (already complete)
    final_losses: dict[str, float]
    steps: int
    tokens: int
    seconds: float
    mixture: dict[str, float]


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for but no CUDA device is visible. Fix: use --device auto.")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def lr_at(step: int, total_steps: int, spec: TrainSpec) -> float:
    """Linear warmup then cosine decay to ``min_lr_ratio * lr`` (as in nanoGPT / Chinchilla)."""
    warmup = max(1, int(spec.warmup_fraction * total_steps))
    if step < warmup:
        return spec.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    floor = spec.lr * spec.min_lr_ratio
    return floor + 0.5 * (spec.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def windows_per_evaluation(spec: TrainSpec, n_domains: int) -> int:
    """Held-out windows per domain at each evaluation, so that all evaluations read ``eval_share`` x the run."""
    if spec.eval_sequences is not None:
        return spec.eval_sequences
    budget = spec.eval_share * spec.tokens / max(1, spec.evals)
    return max(1, int(budget // (n_domains * spec.seq_len)))


# Dense bf16 peak FLOP/s (no sparsity) by device name fragment, for the MFU in the log line.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "4090": 165.0}


def peak_flops(device: torch.device) -> float | None:
    """The GPU's dense bf16 peak in FLOP/s, if it is a known one; None on CPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((t * 1e12 for key, t in PEAK_BF16_TFLOPS.items() if key in name), None)


def eval_points(total_steps: int, evals: int) -> list[int]:
    """Steps after which to evaluate: every 1/evals of the run, always including the last (none for 0)."""
    return sorted({max(1, round(total_steps * i / evals)) for i in range(1, evals + 1)})


class MixtureSampler:
    """Draws (input, target) batches from the domains' training tokens by a mixture."""

    def __init__(self, train: list[np.ndarray], seq_len: int, batch_size: int, seed: int) -> None:
        self.train = train
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.rng = np.random.default_rng([seed, 0x5A3])

    def batch(self, mixture: np.ndarray) -> np.ndarray:
        """``batch_size`` windows of ``seq_len + 1`` tokens (inputs are ``[:, :-1]``, targets ``[:, 1:]``)."""
        domains = self.rng.choice(len(self.train), size=self.batch_size, p=mixture)
        window = self.seq_len + 1
        rows = np.empty((self.batch_size, window), dtype=np.int64)
        for row, d in enumerate(domains):
            start = self.rng.integers(0, len(self.train[d]) - window + 1)
            rows[row] = self.train[d][start:start + window]
        return rows


def to_device(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host batch on ``device``: through pinned memory and an asynchronous copy on CUDA, as is on CPU."""
    tensor = torch.from_numpy(rows)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


class Evaluator:
    """Mean next-token loss on fixed, evenly spaced held-out windows of every domain.

    Windows go through the model ``batch_windows`` at a time (larger matrix products are
    cheaper per token, and memory stays bounded); the loss is then averaged per domain.
    """

    batch_windows = 64

    def __init__(self, val: dict[str, np.ndarray], seq_len: int, n_sequences: int, device: torch.device,
                 autocast: Callable) -> None:
        self.autocast = autocast
        rows, owners = [], []
        for name, tokens in val.items():
            n = min(n_sequences, len(tokens) // (seq_len + 1))
            starts = np.linspace(0, len(tokens) - seq_len - 1, n).astype(np.int64)
            rows += [np.asarray(tokens[s:s + seq_len + 1], dtype=np.int64) for s in starts]
            owners += [name] * n
        self.names = list(val)
        self.windows = to_device(np.stack(rows), device)
        self.owner = torch.tensor([self.names.index(o) for o in owners], device=device)
        self.tokens = int(self.windows[:, 1:].numel())

    @torch.no_grad()
    def __call__(self, model: GPT) -> dict[str, float]:
        was_training = model.training
        model.eval()
        parts = []
        for batch in self.windows.split(self.batch_windows):
            with self.autocast():
                logits = model(batch[:, :-1])
            parts.append(next_token_loss(logits, batch[:, 1:], reduction="none").view(len(batch), -1).mean(dim=1))
        per_window = torch.cat(parts)
        model.train(was_training)
        return {name: float(per_window[self.owner == i].mean()) for i, name in enumerate(self.names)}


def _check_data(prepared: PreparedData, spec: TrainSpec) -> list[str]:
    domains = sorted(prepared.domains)
    unknown = sorted(set(spec.mixture) - set(domains))
    if unknown:
        raise InputError(
            f"the mixture names domain(s) {', '.join(unknown)} that {prepared.root} does not hold.",
            hint=f"use the prepared domains: {', '.join(domains)}.",
        )
    for name, d in prepared.domains.items():
        if d.train_tokens < spec.seq_len + 1 or d.val_tokens < spec.seq_len + 1:
            raise InputError(
                f"domain '{name}' holds {d.train_tokens} training / {d.val_tokens} validation tokens, "
                f"fewer than one window of seq_len+1 = {spec.seq_len + 1}.",
                hint="lower --seq-len or add text to the domain.",
            )
    return domains


def mixture_vector(spec: TrainSpec, domains: list[str]) -> np.ndarray:
    if spec.method != "static":
        return np.full(len(domains), 1.0 / len(domains))
    if not spec.mixture:
        raise InputError("a static run needs a mixture.", hint="pass e.g. --mixture code=0.5,prose=0.3,legal=0.2.")
    where = Where(None, None, "--mixture")
    mixture, note = normalise_mixture({d: parse_share(v, where) for d, v in spec.mixture.items()}, where)
    if note:
        log.info("mixture %s", note)
    return np.array([mixture.get(d, 0.0) for d in domains])


def checkpoint_path(run_id: int) -> Path:
    """Keyed by the run's row id: names are free text, and sanitised names make different runs share a file."""
    settings = Settings.from_env()
    return (settings.checkpoint_dir or settings.home / "checkpoints") / f"run-{int(run_id)}.pt"


def _rng_states(sampler: MixtureSampler, policy: AioliPolicy | None) -> dict:
    np_state = np.random.get_state(legacy=False)
    np_state["state"] = {k: int(v) if np.isscalar(v) else np.asarray(v).tolist() for k, v in np_state["state"].items()}
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": json.dumps(np_state),
        "python": random.getstate(),
        "sampler": json.dumps(sampler.rng.bit_generator.state),
        "policy": json.dumps(policy.state_dict()) if policy is not None else None,
    }


def _set_rng_states(states: dict, sampler: MixtureSampler, policy: AioliPolicy | None) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np_state = json.loads(states["numpy"])
    np.random.set_state(np_state)
    random.setstate(states["python"])
    sampler.rng.bit_generator.state = json.loads(states["sampler"])
    if policy is not None:
        policy.load_state_dict(json.loads(states["policy"]))


class Trainer:
    """One run's model, optimiser, sampler and mixing policy, stepped by :func:`train`."""

    def __init__(self, spec: TrainSpec, prepared: PreparedData | None = None) -> None:
        self.spec = spec
        self.prepared = prepared or read_prepared(spec.data_dir)
        self.domains = _check_data(self.prepared, spec)
        self.device = resolve_device(spec.device)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        torch.manual_seed(spec.seed)
        random.seed(spec.seed)
        np.random.seed(spec.seed)
        self.tokens_per_step = spec.batch_size * spec.seq_len
        self.total_steps = math.ceil(spec.tokens / self.tokens_per_step)
        self.mixture = mixture_vector(spec, self.domains)
        self.raw_model = GPT(config_for(spec.model, self.prepared.vocab_size, spec.seq_len)).to(self.device)
        self.model = torch.compile(self.raw_model) if spec.compile else self.raw_model
        decay = [p for n, p in self.raw_model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.raw_model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=spec.lr, betas=(0.9, 0.95), fused=self.device.type == "cuda",
        )
        train = [open_tokens(self.prepared, d, "train") for d in self.domains]
        val = {d: open_tokens(self.prepared, d, "val") for d in self.domains}
        self.sampler = MixtureSampler(train, spec.seq_len, spec.batch_size, spec.seed)
        self.evaluator = Evaluator(val, spec.seq_len, windows_per_evaluation(spec, len(self.domains)), self.device,
                                   self.autocast)
        self.policy = (
            AioliPolicy(self.domains, self.total_steps, spec.aioli, spec.seed) if spec.method == "aioli" else None
        )
        self.step = 0
        self.mixture_tokens = np.zeros(len(self.domains))  # share-weighted tokens, for the run's mean mixture
        # Summed on the device and read at evaluations only: a .item() a step would stall a GPU.
        self.loss_sum = torch.zeros((), device=self.device)
        self.loss_steps = 0
        self.train_losses: list[list[float]] = []  # [tokens_seen, mean training loss since the last entry]

    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def evaluate(self) -> dict[str, float]:
        return self.evaluator(self.raw_model)

    def _eval_vector(self) -> np.ndarray:
        losses = self.evaluate()
        return np.array([losses[d] for d in self.domains])

    def mixture_for_step(self) -> np.ndarray:
        if self.policy is None:
            return self.mixture
        return self.policy.mixture_for_step(self.step, self._eval_vector, self.step * self.tokens_per_step)

    def train_step(self, mixture: np.ndarray) -> torch.Tensor:
        rows = to_device(self.sampler.batch(mixture), self.device)
        x, y = rows[:, :-1], rows[:, 1:]
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.total_steps, self.spec)
        with self.autocast():
            loss = next_token_loss(self.model(x), y)  # self.model may be the torch.compile wrapper
        loss.backward()
        if self.spec.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.spec.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.mixture_tokens += mixture * self.tokens_per_step
        self.step += 1
        self.loss_sum += loss.detach()
        self.loss_steps += 1
        return loss.detach()

    def take_train_loss(self) -> float:
        """The mean training loss since the last call (recorded on the curve); resets the sum."""
        mean = float(self.loss_sum) / max(1, self.loss_steps)
        self.train_losses.append([self.step * self.tokens_per_step, mean])
        self.loss_sum.zero_()
        self.loss_steps = 0
        return mean

    def state_dict(self) -> dict:
        return {
            "spec_hash": self.spec.fingerprint(),
            "step": self.step,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "mixture_tokens": self.mixture_tokens.tolist(),
            "train_losses": self.train_losses,
            "loss_sum": self.loss_sum,
            "loss_steps": self.loss_steps,
            "rng": _rng_states(self.sampler, self.policy),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["spec_hash"] != self.spec.fingerprint():
            raise TrainError("the checkpoint belongs to a run with other settings; delete it to start over.")
        self.step = int(state["step"])
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.mixture_tokens = np.asarray(state["mixture_tokens"], dtype=float)
        self.train_losses = state["train_losses"]
        self.loss_sum = state["loss_sum"].to(self.device)
        self.loss_steps = int(state["loss_steps"])
        _set_rng_states(state["rng"], self.sampler, self.policy)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)  # a crash mid-save leaves the previous checkpoint intact

    def load(self, path: Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    def mean_mixture(self) -> dict[str, float]:
        total = self.mixture_tokens.sum()
        shares = self.mixture_tokens / total if total > 0 else self.mixture
        return dict(zip(self.domains, map(float, shares)))


def _run_fields(trainer: Trainer) -> dict:
    spec = trainer.spec
    return {
        "mixture": dict(zip(trainer.domains, map(float, trainer.mixture))),
        "model_params": trainer.raw_model.num_params(),
        "tokens": trainer.total_steps * trainer.tokens_per_step,
        "seed": spec.seed,
        "seq_len": spec.seq_len,
        "tokenizer": trainer.prepared.tokenizer,
        "framework": "mixplan",
        "method": spec.method,
        "provenance": {
            "spec_hash": spec.fingerprint(),
            "model_size": spec.model,
            "batch_size": spec.batch_size,
            "lr": spec.lr,
            "data_dir": str(trainer.prepared.root),
            "device": trainer.device.type,
            **({"aioli": spec.aioli.to_dict()} if spec.method == "aioli" else {}),
        },
    }


def train(spec: TrainSpec, *, url: str | None = None, resume: bool = False,
          on_evaluation: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train one run, writing its measurements into the store; ``resume`` continues a stopped run.

    ``on_evaluation(step, total_steps)`` is called after every evaluation has been
    written (and its checkpoint saved, when one was due); tests use it to stop a run midway.
    """
    started = time.perf_counter()
    trainer = Trainer(spec)
    records.ensure_domains_and_targets(spec.project, trainer.prepared.unique_tokens, str(trainer.prepared.root), url)
    handle = records.begin_run(spec.project, spec.name, _run_fields(trainer), {"spec": spec.to_dict()}, resume, url)
    if handle is None:
        log.info("run %s is already complete; nothing to do", spec.name)
        return TrainResult(None, "skipped", {}, 0, 0, 0.0, {})
    path = checkpoint_path(handle.run_id)
    if handle.resumed and path.exists():
        trainer.load(path)
        log.info("resumed %s at step %d of %d", spec.name, trainer.step, trainer.total_steps)
    try:
        losses = _train_loop(trainer, handle, path, url, on_evaluation)
    except BaseException as exc:
        records.fail_run(handle, f"{type(exc).__name__}: {exc}", url)
        raise
    updates = {"schedule": trainer.policy.schedule if trainer.policy else None,
               "provenance": {**_run_fields(trainer)["provenance"], "train_loss": trainer.train_losses}}
    if trainer.policy is not None:
        updates["mixture"] = trainer.mean_mixture()
        updates["provenance"].update(aioli_matrices=trainer.policy.matrices,
                                     final_mixture=dict(zip(trainer.domains, map(float, trainer.policy.weights))))
    records.finish_run(handle, updates, url)
    path.unlink(missing_ok=True)
    return TrainResult(handle.run_id, "complete", losses, trainer.step, trainer.step * trainer.tokens_per_step,
                       time.perf_counter() - started, trainer.mean_mixture())


def _train_loop(trainer: Trainer, handle: records.RunHandle, path: Path, url: str | None,
                on_evaluation: Callable[[int, int], None] | None) -> dict[str, float]:
    spec, total = trainer.spec, trainer.total_steps
    points = set(eval_points(total, spec.evals))
    eval_tokens = trainer.evaluator.tokens * len(points)
    log.info("%s: %d steps; %d evaluations of %d held-out tokens = %.1f%% of the training tokens (forward only)",
             spec.name, total, len(points), trainer.evaluator.tokens,
             100 * eval_tokens / (total * trainer.tokens_per_step))
    peak = peak_flops(trainer.device)
    flops_per_token = trainer.raw_model.flops_per_token()
    last_beat = last_save = time.monotonic()
    window_start, window_step = time.perf_counter(), trainer.step
    losses: dict[str, float] = {}
    trainer.raw_model.train()
    while trainer.step < total:
        trainer.train_step(trainer.mixture_for_step())
        if trainer.step in points:
            train_loss = trainer.take_train_loss()  # reads the device: the timing below includes the sync
            seconds = time.perf_counter() - window_start
            tokens_per_s = (trainer.step - window_step) * trainer.tokens_per_step / seconds
            losses = trainer.evaluate()
            mfu = f", MFU {flops_per_token * tokens_per_s / peak:.1%}" if peak else ""
            log.info("%s: step %d/%d, %d tokens, train loss %.4f, %.0f tokens/s%s, validation loss %s", spec.name,
                     trainer.step, total, trainer.step * trainer.tokens_per_step, train_loss, tokens_per_s, mfu,
                     ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
            records.write_measurements(handle, trainer.step * trainer.tokens_per_step, losses,
                                       trainer.step / total, url)
            last_beat = time.monotonic()
            if trainer.step < total and last_beat - last_save >= spec.checkpoint_seconds:
                trainer.save(path)  # after the rows are committed: see engine.train.records
                last_save = time.monotonic()
            if on_evaluation is not None:
                on_evaluation(trainer.step, total)
            window_start, window_step = time.perf_counter(), trainer.step
        elif time.monotonic() - last_beat > spec.heartbeat_seconds:
            records.heartbeat(handle, trainer.step / total, url)
            last_beat = time.monotonic()
    if not points:  # no evaluation: the curve still gets the run's mean training loss
        trainer.take_train_loss()
    return losses
