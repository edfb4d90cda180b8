#!/usr/bin/env python3
"""An independent JAX (float64) port of every golden-case family of darlc, written from SPEC.md.

Usage (from the crate root):

    python3 ports/jax/darlc_jax.py --reference fixtures/golden --out /tmp/jax_cand [--only PREFIX]
    darlc verify --reference fixtures/golden --candidate /tmp/jax_cand --tier f64

It reads each case's inputs from `<reference>/<case>.safetensors`, recomputes the case's outputs
and gradients with JAX (jax_enable_x64, CPU), and writes `<out>/<case>.safetensors` holding every
tensor the manifest lists under `outputs` and `grads`. Nothing is read from the reference's
outputs. This file is the template a port author copies: one function per case family (`op`).

Planted mistakes (mutation check): set DARLC_JAX_MUTATION to one name of MUTATIONS; the port then
computes that family wrongly on purpose and `darlc verify --tier f64` must reject the candidate.
"""
import argparse
import json
import os
import sys

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")
# DARLC_JAX_CACHE=DIR keeps every compiled kernel on disk, so that a rerun (the mutation check)
# compiles almost nothing: measured 4.5 s against 11.3 s user on nn.block, nn.mhsa, layer_norm.
if os.environ.get("DARLC_JAX_CACHE"):
    jax.config.update("jax_compilation_cache_dir", os.environ["DARLC_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
import jax.numpy as jnp  # noqa: E402
from jax.scipy.linalg import solve_triangular  # noqa: E402
from jax.scipy.special import digamma, erf, gammaln  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

# ------------------------------------------------------------------------------------- mutations
MUTATIONS = {
    "tanh_gelu": "GELU by the tanh approximation instead of erf (SPEC §4.1)",
    "ln_eps_1e6": "LayerNorm eps 1e-6 (MAE/Flax) instead of 1e-5 (SPEC §4.1)",
    "one_sided_ntxent": "NT-Xent over the B online rows only, not all 2B views (SPEC Eq. 10)",
    "no_l_size": "L_size dropped from the epoch-level loss (SPEC Eq. 16)",
    "l_size_tau_0.1": "L_size threshold 0.1/K instead of 0.2/K (SPEC Eq. 20)",
    "no_weight_decay": "GAT Adam step without its coupled weight decay 1e-4 (SPEC §3.4)",
    "no_clip": "GAT step without gradient-norm clipping at 5 (SPEC §3.4)",
    "no_ema": "EMA target update skipped after the optimiser step (SPEC Eq. 8)",
    "bn_unbiased_norm": "train-mode BN normalised by the unbiased variance (SPEC §5)",
    "kl_mean": "L_KL with PyTorch's 'mean' reduction (divide by B*K) instead of batchmean (SPEC §9.2)",
    "p_no_f": "target distribution P without the division by f_j (SPEC Eq. 22)",
    "nu_no_bounds": "nu bisection bracket [0.5, 400] instead of [1, 200] (SPEC §6.8)",
    "pearson_keep_negative": "seeding similarity keeps negative correlations (SPEC §7)",
    "laplacian_unnormalised": "eigengap on D - S~ instead of the normalised L_norm (SPEC Eq. 24)",
    "no_ema_g_t": "EMA of the target head g_t skipped (only the encoder's targets follow, SPEC Eq. 8)",
}
MUT = os.environ.get("DARLC_JAX_MUTATION", "")
if MUT and MUT not in MUTATIONS:
    sys.exit(f"DARLC_JAX_MUTATION={MUT!r} is not one of: {', '.join(MUTATIONS)}")


def mutated(name):
    return MUT == name


# -------------------------------------------------------------------------------------- helpers
def tape_case(case, t, forward, values=None):
    """Run a differentiated case: `forward(P, T) -> dict name -> jnp array` over the params `P`
    (dict) and all tensors `T`; loss = sum_o sum(w.<o> * o) over outputs that have a weight.
    `values(P, T)` may add non-differentiated outputs. Returns the dict of outputs and grads."""
    params = {p: jnp.asarray(t[p]) for p in case["params"]}

    def loss_fn(P):
        outs = forward(P, t)
        loss = 0.0
        for name, o in outs.items():
            w = t.get(f"w.{name}")
            if w is not None:
                loss = loss + jnp.sum(jnp.asarray(w) * o)
        return loss, outs

    (loss, outs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    res = {k: np.asarray(v) for k, v in outs.items()}
    res["loss"] = np.asarray(loss)
    if values is not None:
        res.update({k: np.asarray(v) for k, v in values(params, t).items()})
    for p in case["params"]:
        res[f"grad.{p}"] = np.asarray(grads[p])
    return res


JIT = os.environ.get("DARLC_JAX_JIT", "0") == "1"


def vg(f, **kw):
    """value_and_grad of `f`, op by op; with DARLC_JAX_JIT=1 compiled as one XLA program (measured
    on module1.tiny.step: 25 s user against 31 s op by op; both pass the f64 tier there, CI uses
    the op-by-op default)."""
    g = jax.value_and_grad(f, **kw)
    return jax.jit(g) if JIT else g


def gelu(x):
    if mutated("tanh_gelu"):
        return jax.nn.gelu(x, approximate=True)
    return 0.5 * x * (1.0 + erf(x / jnp.sqrt(2.0)))


LN_EPS = 1e-6 if mutated("ln_eps_1e6") else 1e-5
SELU_L = 1.0507009873554804934193349852946
SELU_A = 1.6732632423543772848170429916717


def elu(x):
    return jnp.where(x > 0, x, jnp.expm1(jnp.minimum(x, 0.0)))


def selu(x):
    return SELU_L * jnp.where(x > 0, x, SELU_A * jnp.expm1(jnp.minimum(x, 0.0)))


def leaky_relu(x, c=0.01):
    return jnp.where(x > 0, x, c * x)


def layer_norm(x, g, b, eps=None):
    eps = LN_EPS if eps is None else eps
    m = jnp.mean(x, axis=-1, keepdims=True)
    v = jnp.mean((x - m) ** 2, axis=-1, keepdims=True)
    return (x - m) / jnp.sqrt(v + eps) * g + b


def batch_norm_train(x, g, b, eps=1e-5):
    m = jnp.mean(x, axis=0)
    v = jnp.mean((x - m) ** 2, axis=0)
    vn = v * x.shape[0] / (x.shape[0] - 1) if mutated("bn_unbiased_norm") else v
    return (x - m) / jnp.sqrt(vn + eps) * g + b, m, v


def segments(offsets):
    """Segment id of every row of a CSR layout."""
    offsets = np.asarray(offsets)
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def segment_softmax(x, offsets):
    seg = segments(offsets)
    n = len(offsets) - 1
    mx = jax.ops.segment_max(jax.lax.stop_gradient(x), seg, num_segments=n)
    e = jnp.exp(x - mx[seg])
    s = jax.ops.segment_sum(e, seg, num_segments=n)
    return e / s[seg]


def adam_first_step(theta, g, lr, wd=0.0, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam, t = 1 from zero moments, coupled weight decay (g <- g + wd*theta)."""
    g = g + wd * theta
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    mh = m / (1 - b1)
    vh = v / (1 - b2)
    return theta - lr * mh / (jnp.sqrt(vh) + eps)


def adam_step(theta, g, lr, m, v, t, wd=0.0, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam step number t from moments (m, v); returns (theta, m, v)."""
    g = g + wd * theta
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return theta - lr * (m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + eps), m, v


def clip_scale(grads, max_norm):
    norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads))
    c = max_norm / (norm + 1e-6)
    return norm, jnp.minimum(c, 1.0)


# -------------------------------------------------------------------- SPEC §17 points 1–8: tape ops
def op_matmul(case, t):
    c = case["config"]

    def f(P, T):
        a, b = P["a"], P["b"]
        if c["ta"]:
            a = jnp.swapaxes(a, -1, -2)
        if c["tb"]:
            b = jnp.swapaxes(b, -1, -2)
        return {"out": a @ b}

    return tape_case(case, t, f)


def op_binary(case, t):
    fn = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide}[case["op"]]
    return tape_case(case, t, lambda P, T: {"out": fn(P["a"], P["b"])})


def op_reduce(case, t):
    c, op = case["config"], case["op"]

    def f(P, T):
        x = P["x"]
        if op == "sum_axis":
            return {"out": jnp.sum(x, axis=c["axis"], keepdims=c["keep"])}
        if op == "mean_axis":
            return {"out": jnp.mean(x, axis=c["axis"], keepdims=c["keep"])}
        return {"out": jnp.sum(x) if op == "sum" else jnp.mean(x)}

    return tape_case(case, t, f)


def op_shape(case, t):
    c, op = case["config"], case["op"]

    def f(P, T):
        if op == "reshape":
            return {"out": jnp.reshape(P["x"], c["shape"])}
        if op == "permute":
            return {"out": jnp.transpose(P["x"], c["axes"])}
        if op == "transpose":
            return {"out": P["x"].T}
        if op == "concat":
            return {"out": jnp.concatenate([P["a"], P["b"]], axis=c["axis"])}
        if op == "slice":
            return {"out": jax.lax.slice_in_dim(P["x"], c["start"], c["end"], axis=c["axis"])}
        if op == "gather_rows":
            return {"out": P["x"][np.asarray(T["idx"])]}
        if op == "scatter_add_rows":
            out = jnp.zeros((c["n"],) + P["x"].shape[1:])
            return {"out": out.at[np.asarray(T["idx"])].add(P["x"])}
        raise KeyError(op)

    return tape_case(case, t, f)


def op_unary(case, t):
    c = case["config"]
    fn = c["function"]
    table = {
        "neg": lambda x: -x,
        "scale": lambda x: c["c"] * x,
        "shift": lambda x: x + c["c"],
        "square": lambda x: x * x,
        "exp": jnp.exp,
        "ln": jnp.log,
        "log1p": jnp.log1p,
        "expm1": jnp.expm1,
        "sqrt": jnp.sqrt,
        "sigmoid": jax.nn.sigmoid,
        "elu": elu,
        "selu": selu,
        "leaky_relu": lambda x: leaky_relu(x, c.get("c", 0.01)),
        "relu": lambda x: jnp.maximum(x, 0.0),
        "gelu": gelu,
        "clamp": lambda x: jnp.clip(x, c.get("lo"), c.get("hi")),
    }
    return tape_case(case, t, lambda P, T: {"out": table[fn](P["x"])})


def op_softmax(case, t):
    op = case["op"]
    fn = {
        "softmax": lambda x: jax.nn.softmax(x, axis=-1),
        "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
        "logsumexp": lambda x: jax.scipy.special.logsumexp(x, axis=-1),
    }[op]
    return tape_case(case, t, lambda P, T: {"out": fn(P["x"])})


def op_segment(case, t):
    if case["op"] == "segment_softmax":
        return tape_case(case, t, lambda P, T: {"out": segment_softmax(P["x"], T["offsets"])})

    def f(P, T):
        off = np.asarray(T["offsets"])
        seg = segments(off)
        src = np.asarray(T["src"])
        msg = P["alpha"] * P["x"][src]
        return {"out": jax.ops.segment_sum(msg, seg, num_segments=len(off) - 1)}

    return tape_case(case, t, f)


def op_norm(case, t):
    op, c = case["op"], case["config"]
    if op == "layer_norm":
        return tape_case(
            case, t, lambda P, T: {"out": layer_norm(P["x"], P["gamma"], P["beta"], LN_EPS)}
        )
    if op == "batch_norm_train":
        f = lambda P, T: {"out": batch_norm_train(P["x"], P["gamma"], P["beta"], c["eps"])[0]}

        def vals(P, T):
            _, m, v = batch_norm_train(P["x"], P["gamma"], P["beta"], c["eps"])
            return {"batch_mean": m, "batch_var": v}

        return tape_case(case, t, f, vals)
    if op == "batch_norm_eval":
        return tape_case(
            case,
            t,
            lambda P, T: {
                "out": (P["x"] - T["running_mean"]) / jnp.sqrt(T["running_var"] + c["eps"])
                * P["gamma"]
                + P["beta"]
            },
        )
    if op == "l2_normalize":

        def f(P, T):
            x = P["x"]
            n = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
            return {"out": x / jnp.maximum(n, c["eps"])}

        return tape_case(case, t, f)
    raise KeyError(op)


def tri_solve(l, b):
    """L^{-1} B for lower-triangular L [k, d, d] (entries above the diagonal ignored)."""
    return solve_triangular(jnp.tril(l), b, lower=True)


def log_det_chol(l):
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(l, axis1=-2, axis2=-1)), axis=-1)


def chol_from_eta(off, eta):
    """SPEC §9.3: L = strictly_lower(off) + diag(exp(eta))."""
    d = eta.shape[-1]
    return jnp.tril(off, -1) + jnp.exp(eta)[..., :, None] * jnp.eye(d)


def mahalanobis(z, mu, l):
    """delta[n, k] = ||L_k^{-1}(z_n - mu_k)||^2."""
    diff = z[None, :, :] - mu[:, None, :]  # [k, n, d]
    y = jax.vmap(lambda lk, dk: solve_triangular(jnp.tril(lk), dk.T, lower=True))(l, diff)
    return jnp.sum(y * y, axis=1).T  # [n, k]


def op_chol(case, t):
    op = case["op"]
    if op == "tri_solve_lower":
        return tape_case(case, t, lambda P, T: {"out": tri_solve(P["l"], P["b"])})
    if op == "log_det_chol":
        if "eta" in case["params"]:
            return tape_case(
                case, t, lambda P, T: {"out": log_det_chol(chol_from_eta(P["off"], P["eta"]))}
            )
        return tape_case(case, t, lambda P, T: {"out": log_det_chol(P["l"])})
    return tape_case(case, t, lambda P, T: {"out": mahalanobis(P["z"], P["mu"], P["l"])})


# ------------------------------------------------------------------------- nn layers (SPEC §4–§5)
def linear(x, W, b=None):
    y = x @ W
    return y if b is None else y + b


def mhsa(x, p, pre, heads):
    """SPEC §4.1: heads are consecutive column blocks of width d_h."""
    q = linear(x, p[pre + "W_q"], p[pre + "b_q"])
    k = linear(x, p[pre + "W_k"], p[pre + "b_k"])
    v = linear(x, p[pre + "W_v"], p[pre + "b_v"])
    d = q.shape[-1]
    dh = d // heads
    outs = []
    for h in range(heads):
        s = slice(h * dh, (h + 1) * dh)
        a = jax.nn.softmax(q[..., s] @ jnp.swapaxes(k[..., s], -1, -2) / jnp.sqrt(dh), axis=-1)
        outs.append(a @ v[..., s])
    return linear(jnp.concatenate(outs, axis=-1), p[pre + "W_o"], p[pre + "b_o"])


def mlp(x, p, pre):
    return linear(gelu(linear(x, p[pre + "W_1"], p[pre + "b_1"])), p[pre + "W_2"], p[pre + "b_2"])


def block(x, p, pre, heads):
    u = x + mhsa(layer_norm(x, p[pre + "ln1.gamma"], p[pre + "ln1.beta"]), p, pre + "attn.", heads)
    return u + mlp(layer_norm(u, p[pre + "ln2.gamma"], p[pre + "ln2.beta"]), p, pre + "mlp.")


def op_nn(case, t):
    op, c = case["op"], case["config"]
    if op == "nn.Linear":
        return tape_case(case, t, lambda P, T: {"out": linear(P["x"], P["linear.W"], P["linear.b"])})
    if op == "nn.LayerNorm":
        return tape_case(
            case, t, lambda P, T: {"out": layer_norm(P["x"], P["ln.gamma"], P["ln.beta"])}
        )
    if op == "nn.BatchNorm1d":
        if c["mode"] == "eval":
            return tape_case(
                case,
                t,
                lambda P, T: {
                    "out": (P["x"] - T["bn.running_mean"])
                    / jnp.sqrt(T["bn.running_var"] + c["eps"])
                    * P["bn.gamma"]
                    + P["bn.beta"]
                },
            )
        f = lambda P, T: {"out": batch_norm_train(P["x"], P["bn.gamma"], P["bn.beta"], c["eps"])[0]}

        def vals(P, T):
            _, m, v = batch_norm_train(P["x"], P["bn.gamma"], P["bn.beta"], c["eps"])
            n = P["x"].shape[0]
            mom = c["momentum"]
            return {
                "bn.running_mean.updated": (1 - mom) * T["bn.running_mean"] + mom * m,
                "bn.running_var.updated": (1 - mom) * T["bn.running_var"] + mom * v * n / (n - 1),
            }

        return tape_case(case, t, f, vals)
    if op == "nn.MultiHeadAttention":
        return tape_case(case, t, lambda P, T: {"out": mhsa(P["x"], P, "attn.", c["n_heads"])})
    if op == "nn.Mlp":
        return tape_case(case, t, lambda P, T: {"out": mlp(P["x"], P, "mlp.")})
    if op == "nn.Block":
        return tape_case(case, t, lambda P, T: {"out": block(P["x"], P, "block0.", c["n_heads"])})
    if op == "nn.Adam":
        res = {}
        names = sorted({k[len("step1.grad."):] for k in t if k.startswith("step1.grad.")})
        b1, b2, eps, lr, wd = c["beta1"], c["beta2"], c["eps"], c["lr"], c["weight_decay"]
        for n in names:
            th = jnp.asarray(t[n])
            m = jnp.zeros_like(th)
            v = jnp.zeros_like(th)
            for s in range(1, c["steps"] + 1):
                g = jnp.asarray(t[f"step{s}.grad.{n}"])
                if not mutated("no_weight_decay"):
                    g = g + wd * th
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                th = th - lr * (m / (1 - b1**s)) / (jnp.sqrt(v / (1 - b2**s)) + eps)
            res[f"{n}.after"], res[f"adam.m.{n}"], res[f"adam.v.{n}"] = th, m, v
        return {k: np.asarray(v) for k, v in res.items()}
    if op == "nn.ema_update":
        m = c["m"]
        return {
            f"{k}.updated": np.asarray(m * t[k] + (1 - m) * t["online." + k[len("target."):]])
            for k in t
            if k.startswith("target.")
        }
    if op == "nn.clip_grad_norm":
        names = sorted(k for k in t if k.startswith("g."))
        norm, s = clip_scale([jnp.asarray(t[n]) for n in names], c["max_norm"])
        res = {f"{n}.clipped": np.asarray(t[n] * s) for n in names}
        res["total_norm"] = np.asarray(norm)
        return res
    raise KeyError(op)


# ------------------------------------------------------------------- GAT autoencoder (SPEC §3, §17.10)
def gat_forward(P, T):
    off = np.asarray(T["graph.offsets"])
    nbrs = np.asarray(T["graph.nbrs"])
    seg = segments(off)
    n = len(off) - 1
    W1, W2 = P["gat.W1"], P["gat.W2"]
    a_c, a_n = P["gat.a_c"].reshape(-1), P["gat.a_n"].reshape(-1)
    x = jnp.asarray(T["x"])
    p1 = x @ W1
    e = jax.nn.sigmoid(p1[seg] @ a_c + p1[nbrs] @ a_n)[:, None]
    alpha = segment_softmax(e, off)
    agg = lambda h: jax.ops.segment_sum(alpha * h[nbrs], seg, num_segments=n)
    h1 = elu(agg(p1))
    h2 = h1 @ W2
    h3 = elu(agg(h2 @ W2.T))
    x_hat = h3 @ W1.T
    return {"alpha": alpha, "h1": h1, "h2": h2, "h3": h3, "x_hat": x_hat,
            "l_gat": jnp.mean((x - x_hat) ** 2)}


def op_gat(case, t):
    op, c = case["op"], case["config"]
    if op == "gat.TiedAutoencoder":
        return tape_case(case, t, lambda P, T: {k: v for k, v in gat_forward(P, T).items()
                                                 if k != "l_gat"})
    if op == "gat.L_GAT":
        return tape_case(case, t, lambda P, T: {"l_gat": gat_forward(P, T)["l_gat"]})
    names = ["gat.W1", "gat.W2", "gat.a_c", "gat.a_n"]
    P = {n: jnp.asarray(t[n]) for n in names}
    l, g = jax.value_and_grad(lambda P: gat_forward(P, t)["l_gat"])(P)
    norm, s = clip_scale([g[n] for n in names], c["clip_max_norm"])
    if mutated("no_clip"):
        s = 1.0
    wd = 0.0 if mutated("no_weight_decay") else c["weight_decay"]
    res = {"l_gat": l, "grad_norm": norm}
    for n in names:
        res["after." + n] = adam_first_step(P[n], g[n] * s, c["lr"], wd)
    return {k: np.asarray(v) for k, v in res.items()}


# ---------------------------------------------------------------- Module I (SPEC §4, tiny of §18)
def patchify(x, p):
    """SPEC §4.1: patch_l(x)[(i*p + j)*C + c] = x[c, a*p + i, b*p + j], l = a*gw + b."""
    n, C, H, W = x.shape
    gh, gw = H // p, W // p
    y = x.reshape(n, C, gh, p, gw, p)  # n, c, a, i, b, j
    y = jnp.transpose(y, (0, 2, 4, 3, 5, 1))  # n, a, b, i, j, c
    return y.reshape(n, gh * gw, p * p * C)


def pos_table(gh, gw, D):
    """SPEC §4.1: PE[l] = [sin(b w), cos(b w), sin(a w), cos(a w)], w_k = 10000^(-k/(D/4))."""
    k = np.arange(D // 4)
    w = 10000.0 ** (-k / (D / 4))
    rows = []
    for a in range(gh):
        for b in range(gw):
            rows.append(np.concatenate([np.sin(b * w), np.cos(b * w), np.sin(a * w), np.cos(a * w)]))
    return jnp.asarray(np.array(rows))


def encoder(tokens, p, pre, cfg):
    """Blocks and the final LayerNorm on already embedded tokens [n, L', D]."""
    for i in range(cfg["blocks"]):
        tokens = block(tokens, p, f"{pre}block{i}.", cfg["heads"])
    return layer_norm(tokens, p[pre + "ln_f.gamma"], p[pre + "ln_f.beta"])


def embed(x, p, pre, cfg):
    pt = patchify(x, cfg["patch"])
    pe = pos_table(cfg["height"] // cfg["patch"], cfg["width"] // cfg["patch"], cfg["dim"])
    return pt @ p[pre + "W_pe"] + p[pre + "b_pe"] + pe, pe


def encode_h(x, p, pre, cfg):
    """h = mean over the L tokens of f(x) on the unmasked image."""
    t0, _ = embed(x, p, pre, cfg)
    return jnp.mean(encoder(t0, p, pre, cfg), axis=1)


def decoder(u, p, cfg):
    """SPEC §4.2: residual MLP D-w1-w2-w3(+shortcut)-w4-C*H*W, LN + LeakyReLU(0.01)."""
    a = leaky_relu(layer_norm(linear(u, p["dec.lin1.W"], p["dec.lin1.b"]), p["dec.ln1.gamma"],
                              p["dec.ln1.beta"]))
    a = leaky_relu(layer_norm(linear(a, p["dec.lin2.W"], p["dec.lin2.b"]), p["dec.ln2.gamma"],
                              p["dec.ln2.beta"]))
    a = linear(a, p["dec.lin3.W"], p["dec.lin3.b"])
    v = a + linear(u, p["dec.short.W"], p["dec.short.b"])
    y = leaky_relu(layer_norm(linear(v, p["dec.lin4.W"], p["dec.lin4.b"]), p["dec.ln4.gamma"],
                              p["dec.ln4.beta"]))
    return linear(y, p["dec.lin5.W"], p["dec.lin5.b"])


def l_mim(x, vis, p, cfg):
    """SPEC Eq. 6–7: masked encoder on the visible tokens `vis [n, n_keep]`, mean-pooled decoder
    input with the mask token, loss on the masked patches (mean over pixels, then over patches)."""
    n = x.shape[0]
    t0, pe = embed(x, p, "vit.", cfg)
    L = t0.shape[1]
    tv = jnp.take_along_axis(t0, jnp.asarray(vis)[:, :, None], axis=1)
    ev = encoder(tv, p, "vit.", cfg)
    n_mask = L - vis.shape[1]
    u = (jnp.sum(ev, axis=1) + n_mask * p["dec.m_tok"] + jnp.sum(pe, axis=0)) / L
    xh = decoder(u, p, cfg).reshape(x.shape)
    err = jnp.mean((patchify(x, cfg["patch"]) - patchify(xh, cfg["patch"])) ** 2, axis=-1)
    m = np.ones((n, L))
    m[np.arange(n)[:, None], vis] = 0.0
    return jnp.sum(err * m) / np.sum(m)


def nt_xent(c, ct, tau):
    """SPEC Eq. 10: symmetric 2B-view NT-Xent; the target side `ct` is a constant."""
    B = c.shape[0]
    nrm = lambda v: v / jnp.maximum(jnp.sqrt(jnp.sum(v * v, axis=1, keepdims=True)), 1e-12)
    a, b = nrm(c), nrm(ct)
    v = jnp.concatenate([a, b], axis=0)
    s = v @ v.T / tau
    pos = np.concatenate([np.arange(B) + B, np.arange(B)])
    s_off = jnp.where(np.eye(2 * B, dtype=bool), -jnp.inf, s)
    ell = -s[np.arange(2 * B), pos] + jax.scipy.special.logsumexp(s_off, axis=1)
    if mutated("one_sided_ntxent"):
        return jnp.mean(ell[:B])
    return jnp.mean(ell)


def l_ssl(lm, lc, p):
    s1, s2 = p["uwl.sigma1"] ** 2, p["uwl.sigma2"] ** 2
    return lm / (2 * s1) + lc / (2 * s2) + jnp.log1p(s1) + jnp.log1p(s2)


def target_c(xs, T, cfg):
    tp = {k: jnp.asarray(v) for k, v in T.items() if k.startswith("target.")}
    h = encode_h(jnp.asarray(xs), tp, "target.vit.", cfg)
    return h @ tp["target.g_t.W"] + tp["target.g_t.b"]


def ema_targets(after, m):
    """SPEC Eq. 8 after the step: target.vit.* from vit.*, target.g_t.* from g_o.*."""
    out = {}
    for k, v in after.items():
        if k.startswith("target."):
            src = k[len("target."):].replace("g_t.", "g_o.")
            skip = mutated("no_ema") or (mutated("no_ema_g_t") and k.startswith("target.g_t."))
            out[k] = v if skip else m * v + (1 - m) * after[src]
    return out


def module1_trainable(t):
    return sorted(k for k in t if k.startswith(("vit.", "dec.", "g_o.", "uwl.")))


def op_module1(case, t):
    cfg = case["config"]["config"]
    m = case["config"]["ema_momentum"]
    x, xs = jnp.asarray(t["x"]), jnp.asarray(t["x_s"])
    vis = np.asarray(t["mask.visible"]).reshape(x.shape[0], -1)
    names = module1_trainable(t)
    P = {k: jnp.asarray(t[k]) for k in names}
    ct = target_c(xs, t, cfg)

    def loss(P):
        lm = l_mim(x, vis, P, cfg)
        c = encode_h(x, P, "vit.", cfg) @ P["g_o.W"] + P["g_o.b"]
        lc = nt_xent(c, ct, cfg["tau"])
        return l_ssl(lm, lc, P), (lm, lc)

    (ls, (lm, lc)), g = vg(loss, has_aux=True)(P)
    res = {"c_t": ct, "l_ssl": ls, "l_mim": lm, "l_cl": lc}
    after = {k: jnp.asarray(v) for k, v in t.items() if k.startswith("target.")}
    for k in names:
        res["grad." + k] = g[k]
        after[k] = adam_first_step(P[k], g[k], 1e-3)
    after.update(ema_targets(after, m))
    res.update({"after." + k: v for k, v in after.items()})
    return {k: np.asarray(v) for k, v in res.items()}


# ---------------------------------------------------------------- Module II: SMM and MAP-ECM (SPEC §6)
NU_MIN, NU_MAX = (0.5, 400.0) if mutated("nu_no_bounds") else (1.0, 200.0)


def ln_st(z, mu, chol, nu):
    """SPEC Eq. 13 via Cholesky: ln St(z_i | mu_k, L_k L_k^T, nu_k) -> [n, k], and delta [n, k]."""
    d = z.shape[1]
    delta = jnp.maximum(mahalanobis(z, mu, chol), 0.0)
    return (gammaln((nu + d) / 2) - gammaln(nu / 2) - 0.5 * d * jnp.log(nu * jnp.pi)
            - 0.5 * log_det_chol(chol) - 0.5 * (nu + d) * jnp.log1p(delta / nu)), delta


def estep(z, pi, mu, chol, nu):
    """SPEC §6.6: ln rho, LSE, ln q, r, w."""
    d = z.shape[1]
    lst, delta = ln_st(z, mu, chol, nu)
    ln_rho = jnp.log(pi) + lst
    lse = jax.scipy.special.logsumexp(ln_rho, axis=1)
    ln_q = ln_rho - lse[:, None]
    return {"ln_rho": ln_rho, "lse": lse, "ln_q": ln_q, "r": jnp.exp(ln_q),
            "w": (nu + d) / (nu + delta)}


def l_map(lse, pi, mu, chol, pr):
    """SPEC §6.9."""
    d = mu.shape[1]
    tot = jnp.sum(lse) + (pr["alpha"] - 1) * jnp.sum(jnp.log(pi))
    for k in range(mu.shape[0]):
        L = chol[k]
        Li = solve_triangular(L, jnp.eye(d), lower=True)
        sinv = Li.T @ Li
        dm = mu[k] - pr["m0"]
        tot += (-0.5 * (pr["nu0"] + d + 2) * log_det_chol(L) - 0.5 * jnp.trace(pr["s0"] @ sinv)
                - 0.5 * pr["kappa0"] * dm @ sinv @ dm)
    return tot


def mstep(z, r, w, pr):
    """SPEC §6.7 (division-free MAP form); returns pi, mu, sigma (symmetrised), N_k."""
    n, d = z.shape
    K = r.shape[1]
    nk = jnp.sum(r, axis=0)
    rw = r * w
    wk = jnp.sum(rw, axis=0)
    pi = (nk + pr["alpha"] - 1) / (n + K * (pr["alpha"] - 1))
    mu = (rw.T @ z + pr["kappa0"] * pr["m0"]) / (wk + pr["kappa0"])[:, None]
    sig = []
    for k in range(K):
        dz = z - mu[k]
        dm = mu[k] - pr["m0"]
        s = (pr["s0"] + (rw[:, k, None] * dz).T @ dz + pr["kappa0"] * jnp.outer(dm, dm))
        s = s / (pr["nu0"] + nk[k] + d + 2)
        sig.append(0.5 * (s + s.T))
    return pi, mu, jnp.stack(sig), nk


def ln_minus_digamma(x):
    """ln x - psi(x) per SPEC §16: recurrence up to x >= 10, then the asymptotic series."""
    acc = 0.0
    x = float(x)
    while x < 10.0:
        # ln x - psi(x) = ln x - psi(x+1) + 1/x = [ln(x+1) - psi(x+1)] + ln(x/(x+1)) + 1/x
        acc += np.log(x / (x + 1.0)) + 1.0 / x
        x += 1.0
    x2 = x * x
    return acc + (1 / (2 * x) + 1 / (12 * x2) - 1 / (120 * x2**2) + 1 / (252 * x2**3)
                  - 1 / (240 * x2**4) + 1 / (132 * x2**5))


def solve_nu(g, nu_old, d):
    """SPEC §6.8: bisection on t = ln nu within [ln NU_MIN, ln NU_MAX]."""
    f = lambda t: 1.0 + ln_minus_digamma(np.exp(t) / 2) + g - ln_minus_digamma((nu_old + d) / 2)
    lo, hi = np.log(NU_MIN), np.log(NU_MAX)
    if f(hi) >= 0:
        return NU_MAX
    if f(lo) <= 0:
        return NU_MIN
    for _ in range(100):
        if hi - lo < 1e-12:
            break
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def nu_step(e, nk, nu, d):
    r, w = np.asarray(e["r"]), np.asarray(e["w"])
    out = []
    for k in range(r.shape[1]):
        if nk[k] < 1e-8:
            out.append(float(nu[k]))
            continue
        g = np.sum(r[:, k] * (np.log(w[:, k]) - w[:, k])) / nk[k]
        out.append(solve_nu(g, float(nu[k]), d))
    return jnp.asarray(out)


def em(z, th, pr, max_iter, tol):
    """SPEC §6.9: E-step, then (M-step, nu-step, E-step) until |dl| <= tol (1 + |l_prev|)."""
    d = z.shape[1]
    e = estep(z, th["pi"], th["mu"], th["chol"], th["nu"])
    trace = [l_map(e["lse"], th["pi"], th["mu"], th["chol"], pr)]
    it = 0
    while it < max_iter:
        pi, mu, sig, nk = mstep(z, e["r"], e["w"], pr)
        nu = nu_step(e, np.asarray(nk), np.asarray(th["nu"]), d)
        th = {"pi": pi, "mu": mu, "sigma": sig, "chol": jnp.linalg.cholesky(sig), "nu": nu}
        e = estep(z, th["pi"], th["mu"], th["chol"], th["nu"])
        trace.append(l_map(e["lse"], th["pi"], th["mu"], th["chol"], pr))
        it += 1
        if abs(trace[-1] - trace[-2]) <= tol * (1 + abs(trace[-2])):
            break
    return th, e, trace, it


def prior_of(t, pre="smm.prior."):
    return {k: jnp.asarray(t[pre + k]) for k in ["alpha", "kappa0", "m0", "nu0", "s0"]}


def op_smm(case, t):
    z = jnp.asarray(t["z"])
    th = {k: jnp.asarray(t["smm." + k]) for k in ["pi", "mu", "chol", "nu", "sigma"]}
    pr = prior_of(t)
    e0 = estep(z, th["pi"], th["mu"], th["chol"], th["nu"])
    th1, _, trace, _ = em(z, th, pr, 1, 0.0)
    res = {"estep.ln_q": e0["ln_q"], "estep.w": e0["w"], "estep.lse": e0["lse"],
           "l_map": jnp.asarray(trace)}
    res.update({f"after.smm.{k}": v for k, v in th1.items()})
    return {k: np.asarray(v) for k, v in res.items()}


# ------------------------------------------------------- joint phase: epoch and batch steps (SPEC §5, §8, §9)
def proj_head(h, p, bn_train):
    """SPEC Eq. 12: z = SELU(BN(h W1 + b1)) W2 + b2. Returns z and the BN batch statistics."""
    a = linear(h, p["proj.lin1.W"], p["proj.lin1.b"])
    if bn_train:
        y, m, v = batch_norm_train(a, p["proj.bn.gamma"], p["proj.bn.beta"])
    else:
        y = (a - p["proj.bn.running_mean"]) / jnp.sqrt(p["proj.bn.running_var"] + 1e-5)
        y = y * p["proj.bn.gamma"] + p["proj.bn.beta"]
        m = v = None
    return linear(selu(y), p["proj.lin2.W"], p["proj.lin2.b"]), m, v


def laplacian_loss(z, t, lam):
    """SPEC Eq. 17: (lambda/N) tr(Z^T L_sym Z), L_sym = I+ - D^-1/2 S D^-1/2."""
    n = z.shape[0]
    indptr = np.asarray(t["similarity.indptr"])
    rows = segments(indptr)
    cols = np.asarray(t["similarity.indices"])
    vals = jnp.asarray(t["similarity.values"])
    deg = np.asarray(jax.ops.segment_sum(np.asarray(t["similarity.values"]), rows, num_segments=n))
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    quad = jnp.sum((deg > 0)[:, None] * z * z)
    cross = jnp.sum(vals * dinv[rows] * dinv[cols] * jnp.sum(z[rows] * z[cols], axis=1))
    return lam / n * (quad - cross)


def size_loss(ln_q, K):
    """SPEC Eq. 19–20: sum_j [fbar ln fbar - tau ln tau], fbar = clamp(mean_i q_ij, 1e-12, tau)."""
    tau = (0.1 if mutated("l_size_tau_0.1") else 0.2) / K
    f = jnp.mean(jnp.exp(ln_q), axis=0)
    fb = jnp.clip(f, 1e-12, tau)
    return jnp.sum(fb * jnp.log(fb) - tau * np.log(tau))


def clustering_terms(z, t, lam, pi, mu, chol, nu):
    """L_Lap, L_LH and L_size of SPEC §8.2–8.4 at fixed Theta-hat."""
    e = estep(z, pi, mu, chol, nu)
    l_lap = laplacian_loss(z, t, lam)
    l_lh = -jnp.mean(e["lse"])
    l_size = 0.0 * l_lh if mutated("no_l_size") else size_loss(e["ln_q"], mu.shape[0])
    return l_lap, l_lh, l_size


def theta_hat(t):
    return [jnp.asarray(t["theta." + k]) for k in ["pi", "mu", "chol", "nu"]]


def stored_adam_step(t, prefix, name, theta, g, prior_steps):
    """Adam (lr 1e-3) from the stored state `<prefix>.m/v.<name>` after `prior_steps` steps
    (zero moments when the case stores none)."""
    m = jnp.asarray(t.get(f"{prefix}.m.{name}", np.zeros(theta.shape)))
    v = jnp.asarray(t.get(f"{prefix}.v.{name}", np.zeros(theta.shape)))
    return adam_step(theta, g, 1e-3, m, v, prior_steps + 1)[0]


def op_epoch_step(case, t):
    """SPEC §8.6: L_E = L_Lap + L_LH + L_size + L_MIM over all N (eval-mode BN), exact gradient
    (taken here on one full-batch graph, which SPEC §8.6 states equals the two-pass gradient),
    one Adam_E step (lr 1e-3) on theta, theta_dec, theta_proj, then the EMA of Eq. 8."""
    cfg = case["config"]["module1"]
    lam = case["config"]["lambda"]
    m = case["config"]["ema_momentum"]
    x = jnp.asarray(t["x"])
    vis = np.asarray(t["mask.visible"]).reshape(x.shape[0], -1)
    th = theta_hat(t)
    names = sorted(k for k in t if k.startswith(("vit.", "dec.", "proj.lin", "proj.bn.gamma",
                                                  "proj.bn.beta")))
    consts = {k: jnp.asarray(v) for k, v in t.items() if k.startswith("proj.bn.running")}

    def zf(P):
        return proj_head(encode_h(x, P, "vit.", cfg), {**P, **consts}, False)[0]

    P = {k: jnp.asarray(t[k]) for k in names}
    z = (jax.jit(zf) if JIT else zf)(P)
    G = vg(lambda z: sum(clustering_terms(z, t, lam, *th)))(z)[1]

    def loss(P):
        terms = clustering_terms(zf(P), t, lam, *th)
        lm = l_mim(x, vis, P, cfg)
        return sum(terms) + lm, (terms, lm)

    (_, (terms, lm)), g = vg(loss, has_aux=True)(P)
    res = {"z": z, "G": G, "l_lap": terms[0], "l_lh": terms[1], "l_size": terms[2], "l_mim": lm}
    after = {k: jnp.asarray(v) for k, v in t.items() if "." in k and k.split(".")[0] in
             ("vit", "dec", "g_o", "uwl", "proj", "smm", "target")}
    t0 = case["config"].get("adam_prior_steps", 0)
    for k in names:
        res["grad." + k] = g[k]
        after[k] = stored_adam_step(t, "adam_e", k, P[k], g[k], t0)
    after.update(ema_targets(after, m))
    res.update({"after." + k: v for k, v in after.items()})
    return {k: np.asarray(v) for k, v in res.items()}


def op_batch_step(case, t):
    """SPEC §9.2–9.4: L_B = L_KL + L_SSL on one batch, train-mode BN, trainable mu, eta, l_off;
    one Adam_B step, then the EMA and the BN running statistics (momentum 0.1, unbiased)."""
    cfg = case["config"]["module1"]
    m = case["config"]["ema_momentum"]
    x, xs = jnp.asarray(t["x"]), jnp.asarray(t["x_s"])
    B = x.shape[0]
    vis = np.asarray(t["mask.visible"]).reshape(B, -1)
    ln_p = jnp.asarray(t["ln_p"])
    pi, nu = jnp.asarray(t["theta.pi"]), jnp.asarray(t["theta.nu"])
    names = sorted(k for k in t if k.startswith(("vit.", "dec.", "g_o.", "uwl.", "proj.lin",
                                                  "proj.bn.gamma", "proj.bn.beta", "smm.")))
    ct = target_c(xs, t, cfg)

    def loss(P):
        h = encode_h(x, P, "vit.", cfg)
        z, bm, bv = proj_head(h, P, True)
        chol = chol_from_eta(P["smm.l_off"], P["smm.eta"])
        ln_q = estep(z, pi, P["smm.mu"], chol, nu)["ln_q"]
        kl = jnp.sum(jnp.exp(ln_p) * (ln_p - ln_q))
        kl = kl / (B * ln_q.shape[1]) if mutated("kl_mean") else kl / B
        lm = l_mim(x, vis, P, cfg)
        lc = nt_xent(h @ P["g_o.W"] + P["g_o.b"], ct, cfg["tau"])
        ls = l_ssl(lm, lc, P)
        return kl + ls, (kl, ls, lm, lc, bm, bv)

    P = {k: jnp.asarray(t[k]) for k in names}
    (lb, (kl, ls, lm, lc, bm, bv)), g = vg(loss, has_aux=True)(P)
    res = {"l_b": lb, "l_kl": kl, "l_ssl": ls, "l_mim": lm, "l_cl": lc}
    after = {k: jnp.asarray(v) for k, v in t.items() if "." in k and k.split(".")[0] in
             ("vit", "dec", "g_o", "uwl", "proj", "smm", "target")}
    t0 = case["config"].get("adam_prior_steps", 0)
    for k in names:
        res["grad." + k] = g[k]
        after[k] = stored_adam_step(t, "adam_b", k, P[k], g[k], t0)
    after.update(ema_targets(after, m))
    after["proj.bn.running_mean"] = 0.9 * after["proj.bn.running_mean"] + 0.1 * bm
    after["proj.bn.running_var"] = 0.9 * after["proj.bn.running_var"] + 0.1 * bv * B / (B - 1)
    res.update({"after." + k: v for k, v in after.items()})
    return {k: np.asarray(v) for k, v in res.items()}


# ------------------------------------------------------------ single Module II parts (SPEC §6.5, §7, §8–§10)
def op_gat_steps(case, t):
    """SPEC §3.4, `steps` full-batch steps with one Adam state: clip, coupled weight decay."""
    c = case["config"]
    names = ["gat.W1", "gat.W2", "gat.a_c", "gat.a_n"]
    P = {n: jnp.asarray(t[n]) for n in names}
    M = {n: jnp.zeros_like(P[n]) for n in names}
    V = {n: jnp.zeros_like(P[n]) for n in names}
    wd = 0.0 if mutated("no_weight_decay") else c["weight_decay"]
    losses = []
    for step in range(1, c["steps"] + 1):
        l, g = jax.value_and_grad(lambda P: gat_forward(P, t)["l_gat"])(P)
        losses.append(l)
        _, s = clip_scale([g[n] for n in names], c["clip_max_norm"])
        if mutated("no_clip"):
            s = 1.0
        for n in names:
            P[n], M[n], V[n] = adam_step(P[n], g[n] * s, c["lr"], M[n], V[n], step, wd)
    res = {"l_gat": jnp.stack(losses)}
    res.update({"after." + n: P[n] for n in names})
    return {k: np.asarray(v) for k, v in res.items()}


def default_prior(z, K):
    """SPEC §6.2: alpha 2, m0 = mean, kappa0 0.01, nu0 = d + 2, S0 = diag(biased var)/K^(2/d)."""
    n, d = z.shape
    return {"alpha": jnp.asarray(2.0), "kappa0": jnp.asarray(0.01), "m0": jnp.mean(z, axis=0),
            "nu0": jnp.asarray(d + 2.0), "s0": jnp.diag(jnp.var(z, axis=0)) / K ** (2.0 / d)}


def kmeans_pp(z, K, first, us):
    """SPEC §6.5 with the stored draws: pick `first`; then the first row whose running sum of D^2
    exceeds u * sum D^2 (rows with D^2 = 0 never)."""
    picks = [int(first)]
    dmin = np.sum((z - z[picks[0]]) ** 2, axis=1)
    for u in us:
        target = u * np.sum(dmin)
        acc, pick = 0.0, None
        for i, di in enumerate(dmin):
            acc += di
            if di > 0 and acc > target:
                pick = i
                break
        if pick is None:
            pick = int(np.nonzero(dmin > 0)[0][-1])
        picks.append(pick)
        dmin = np.minimum(dmin, np.sum((z - z[pick]) ** 2, axis=1))
    return picks


def lloyd(z, centres, max_iter=300):
    """SPEC §6.5: assign (ties -> lower index), means, until no assignment changes."""
    n, K = z.shape[0], centres.shape[0]
    labels = np.full(n, -1)
    it = 0
    while it < max_iter:
        dist = np.sum((z[:, None, :] - centres[None, :, :]) ** 2, axis=2)
        new = np.argmin(dist, axis=1)
        it += 1
        if np.array_equal(new, labels):
            break
        labels = new
        dd = dist[np.arange(n), labels]
        for k in range(K):  # empty cluster: the row farthest from its centre moves to it
            if not np.any(labels == k):
                far = int(np.argmax(dd))
                labels[far], dd[far] = k, -1.0
        centres = np.stack([z[labels == k].mean(axis=0) for k in range(K)])
    return centres, labels, it


def hard_init(z, labels, K, pr):
    """SPEC §6.5 step 2: the M-step with r = 1[label = k], w = 1, nu = 3."""
    r = jnp.asarray(np.eye(K)[labels])
    pi, mu, sig, _ = mstep(jnp.asarray(z), r, jnp.ones_like(r), pr)
    return {"pi": pi, "mu": mu, "sigma": sig, "chol": jnp.linalg.cholesky(sig),
            "nu": jnp.full((K,), 3.0)}


def op_smm_init(case, t):
    z = np.asarray(t["z"])
    K = case["config"]["k"]
    pr = default_prior(jnp.asarray(z), K)
    picks = kmeans_pp(z, K, int(np.asarray(t["kmeans.first"]).reshape(-1)[0]), np.asarray(t["kmeans.u"]))
    centres, labels, it = lloyd(z, z[picks])
    th = hard_init(z, labels, K, pr)
    res = {"picks": np.asarray(picks, float), "lloyd.centres": centres,
           "lloyd.labels": labels.astype(float), "lloyd.iters": np.asarray(float(it))}
    res.update({"prior." + k: v for k, v in pr.items()})
    res.update({"init.smm." + k: v for k, v in th.items()})
    return {k: np.asarray(v) for k, v in res.items()}


def op_smm_fit(case, t):
    z = jnp.asarray(t["z"])
    th = {k: jnp.asarray(t["smm." + k]) for k in ["pi", "mu", "chol", "nu", "sigma"]}
    th, e, trace, it = em(z, th, prior_of(t), case["config"]["max_iter"], case["config"]["tol"])
    conv = it < case["config"]["max_iter"] or abs(trace[-1] - trace[-2]) <= case["config"]["tol"] * (1 + abs(trace[-2]))
    res = {"l_map": jnp.asarray(trace), "iters": np.asarray(float(it)),
           "converged": np.asarray(1.0 if conv else 0.0), "estep.ln_q": e["ln_q"]}
    res.update({"after.smm." + k: v for k, v in th.items()})
    return {k: np.asarray(v) for k, v in res.items()}


def op_l_size(case, t):
    def f(P, T):
        z = P["z"]
        pi, mu, chol, nu = theta_hat(T)
        e = estep(z, jnp.asarray(pi), jnp.asarray(mu), jnp.asarray(chol), jnp.asarray(nu))
        ls = 0.0 * jnp.sum(z) if mutated("no_l_size") else size_loss(e["ln_q"], mu.shape[0])
        return {"l_size": ls, "l_lh": -jnp.mean(e["lse"])}

    return tape_case(case, t, f)


def target_log_p(ln_q):
    """SPEC Eq. 22 in log space."""
    lse = jax.scipy.special.logsumexp
    ln_f = lse(ln_q, axis=0)
    a = 2 * ln_q if mutated("p_no_f") else 2 * ln_q - ln_f
    return a - lse(a, axis=1, keepdims=True)


def op_target_p(case, t):
    return {"ln_p": np.asarray(target_log_p(jnp.asarray(t["ln_q"])))}


def seeding_similarity(y, k):
    """SPEC §7: Pearson (zero variance -> 0), kNN (ties -> lower index), union, max(0, r)."""
    n = y.shape[0]
    c = y - y.mean(axis=1, keepdims=True)
    nrm = np.sqrt(np.sum(c * c, axis=1))
    r = np.zeros((n, n))
    ok = nrm > 0
    r[np.ix_(ok, ok)] = (c[ok] @ c[ok].T) / np.outer(nrm[ok], nrm[ok])
    knn = np.zeros((n, n), bool)
    for i in range(n):
        cand = [j for j in range(n) if j != i]
        cand.sort(key=lambda j: (-r[i, j], j))
        knn[i, cand[:k]] = True
    keep = knn | knn.T
    s = np.where(keep, r if mutated("pearson_keep_negative") else np.maximum(r, 0.0), 0.0)
    np.fill_diagonal(s, 0.0)
    return s


def op_similarity(case, t):
    return {"s": seeding_similarity(np.asarray(t["y"]), case["config"]["k"])}


def op_eigengap(case, t):
    """SPEC §10: S~ = A + A A (diag 0), L_norm = I+ - D^-1/2 S~ D^-1/2, largest gap in [2, N-1]."""
    s = np.asarray(t["s"])
    n = s.shape[0]
    a = s / s.max()
    st = a + a @ a
    np.fill_diagonal(st, 0.0)
    deg = st.sum(axis=1)
    dinv = np.where(deg > 0, 1 / np.sqrt(np.where(deg > 0, deg, 1)), 0.0)
    lap = np.diag((deg > 0).astype(float)) - dinv[:, None] * st * dinv[None, :]
    if mutated("laplacian_unnormalised"):
        lap = np.diag(deg) - st
    lam = np.maximum(np.sort(np.asarray(jnp.linalg.eigvalsh(jnp.asarray(lap)))), 0.0)
    gaps = [(lam[k] - lam[k - 1], k) for k in range(2, n)]
    k_hat = max(gaps, key=lambda g: (g[0], -g[1]))[1]
    return {"s_tilde": st, "eigenvalues": lam, "k_hat": np.asarray(float(k_hat))}


# ---------------------------------------------------------------------------------------- driver
FAMILIES = {
    "matmul_t": op_matmul, "batch_matmul": op_matmul,
    "add": op_binary, "sub": op_binary, "mul": op_binary, "div": op_binary,
    "sum_axis": op_reduce, "mean_axis": op_reduce, "sum": op_reduce, "mean": op_reduce,
    "reshape": op_shape, "permute": op_shape, "transpose": op_shape, "concat": op_shape,
    "slice": op_shape, "gather_rows": op_shape, "scatter_add_rows": op_shape,
    "unary": op_unary,
    "softmax": op_softmax, "log_softmax": op_softmax, "logsumexp": op_softmax,
    "segment_softmax": op_segment, "segment_weighted_sum": op_segment,
    "layer_norm": op_norm, "batch_norm_train": op_norm, "batch_norm_eval": op_norm,
    "l2_normalize": op_norm,
    "tri_solve_lower": op_chol, "log_det_chol": op_chol, "mahalanobis": op_chol,
    "module1.train_step": op_module1,
    "smm.em": op_smm,
    "joint.epoch_step": op_epoch_step,
    "gat.train_steps": op_gat_steps,
    "smm.init": op_smm_init,
    "smm.em_fit": op_smm_fit,
    "losses.l_size_l_lh": op_l_size,
    "losses.target_distribution": op_target_p,
    "similarity.seeding": op_similarity,
    "k_infer.eigengap": op_eigengap,
    "joint.batch_step": op_batch_step,
    "gat.TiedAutoencoder": op_gat, "gat.L_GAT": op_gat, "gat.train_step": op_gat,
}
for _op in ["nn.Linear", "nn.LayerNorm", "nn.BatchNorm1d", "nn.MultiHeadAttention", "nn.Mlp",
            "nn.Block", "nn.Adam", "nn.ema_update", "nn.clip_grad_norm"]:
    FAMILIES[_op] = op_nn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default="fixtures/golden")
    ap.add_argument("--out", help="candidate folder to write (required unless --list-mutations)")
    ap.add_argument("--only", default="", help="comma-separated case-name prefixes")
    ap.add_argument("--list-mutations", action="store_true")
    a = ap.parse_args()
    if a.list_mutations:
        for k, v in MUTATIONS.items():
            print(f"{k}\t{v}")
        return
    if not a.out:
        ap.error("--out is required")
    man = json.load(open(os.path.join(a.reference, "manifest.json")))
    os.makedirs(a.out, exist_ok=True)
    prefixes = [p for p in a.only.split(",") if p]
    skipped = []
    for case in man["cases"]:
        if prefixes and not any(case["name"].startswith(p) for p in prefixes):
            continue
        fam = FAMILIES.get(case["op"])
        if fam is None:
            skipped.append(case["name"])
            continue
        t = load_file(os.path.join(a.reference, case["file"]))
        # Only the inputs are visible to the port: drop every reference output and gradient.
        t = {k: v for k, v in t.items() if k in case["inputs"]}
        res = fam(case, t)
        want = case["outputs"] + case["grads"]
        missing = [n for n in want if n not in res]
        if missing:
            sys.exit(f"{case['name']}: the port did not compute {missing}")
        # safetensors.numpy writes an array's memory as it is, so every array must be C-contiguous
        # (a transposed view would be stored transposed). Not np.ascontiguousarray: it turns a 0-d
        # scalar (loss, l_mim, ...) into shape [1], which verify rejects as a shape change.
        save_file({n: np.array(res[n], dtype=np.float64, order="C") for n in want},
                  os.path.join(a.out, case["file"]))
    if skipped:
        print(f"no JAX family for {len(skipped)} case(s): {', '.join(skipped)}", file=sys.stderr)


if __name__ == "__main__":
    main()
