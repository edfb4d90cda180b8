//! Elementwise functions (method §17 point 2) and broadcasting binary arithmetic (point 1).
//!
//! Each [`Unary`] knows its value `f(x)` and its derivative `f'(x)` (given `x` and `y = f(x)`),
//! written next to each other. ELU and SELU use `expm1` for `x ≤ 0` and GELU is the exact
//! `½x(1 + erf(x/√2))` (method §16 "Smooth functions near their kinks").

use super::fast32::op_gelu;
use super::par;
use crate::float::Float;
use ndarray::{ArrayD, Axis, IxDyn};

/// SELU scale λ (method §5).
pub const SELU_LAMBDA: f64 = 1.050_700_987_355_480_5;
/// SELU α (method §5).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;

/// An elementwise function of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    /// `c · x`
    Scale(f64),
    /// `x + c`
    Shift(f64),
    Square,
    Exp,
    Ln,
    Log1p,
    Expm1,
    Sqrt,
    Sigmoid,
    /// ELU with α = 1.
    Elu,
    Selu,
    /// `max(x, slope·x)`
    LeakyRelu(f64),
    Relu,
    /// Exact GELU `½x(1 + erf(x/√2))`.
    Gelu,
    /// `min(max(x, lo), hi)`; gradient 1 strictly inside, 0 outside.
    Clamp(f64, f64),
}

impl Unary {
    /// `f(x)`.
    #[inline]
    pub fn value<T: Float>(self, x: T) -> T {
        let one = T::one();
        match self {
            Unary::Neg => -x,
            Unary::Scale(c) => T::of(c) * x,
            Unary::Shift(c) => x + T::of(c),
            Unary::Square => x * x,
            Unary::Exp => x.exp(),
            Unary::Ln => x.ln(),
            Unary::Log1p => x.ln_1p(),
            Unary::Expm1 => x.exp_m1(),
            Unary::Sqrt => x.sqrt(),
            Unary::Sigmoid => {
                // Stable in both tails.
                if x >= T::zero() {
                    one / (one + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (one + e)
                }
            }
            Unary::Elu => {
                if x > T::zero() {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Unary::Selu => {
                let l = T::of(SELU_LAMBDA);
                if x > T::zero() {
                    l * x
                } else {
                    l * T::of(SELU_ALPHA) * x.exp_m1()
                }
            }
            Unary::LeakyRelu(s) => {
                if x > T::zero() {
                    x
                } else {
                    T::of(s) * x
                }
            }
            Unary::Relu => {
                if x > T::zero() {
                    x
                } else {
                    T::zero()
                }
            }
            Unary::Gelu => {
                T::of(0.5) * x * (one + (x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf())
            }
            Unary::Clamp(lo, hi) => x.max(T::of(lo)).min(T::of(hi)),
        }
    }

    /// `f'(x)`, given `x` and `y = f(x)`.
    #[inline]
    pub fn derivative<T: Float>(self, x: T, y: T) -> T {
        let one = T::one();
        let zero = T::zero();
        match self {
            Unary::Neg => -one,
            Unary::Scale(c) => T::of(c),
            Unary::Shift(_) => one,
            Unary::Square => x + x,
            Unary::Exp => y,
            Unary::Ln => one / x,
            Unary::Log1p => one / (one + x),
            Unary::Expm1 => y + one,
            Unary::Sqrt => T::of(0.5) / y,
            Unary::Sigmoid => y * (one - y),
            Unary::Elu => {
                if x > zero {
                    one
                } else {
                    y + one
                }
            }
            Unary::Selu => {
                if x > zero {
                    T::of(SELU_LAMBDA)
                } else {
                    y + T::of(SELU_LAMBDA * SELU_ALPHA)
                }
            }
            Unary::LeakyRelu(s) => {
                if x > zero {
                    one
                } else {
                    T::of(s)
                }
            }
            Unary::Relu => {
                if x > zero {
                    one
                } else {
                    zero
                }
            }
            Unary::Gelu => {
                // d/dx ½x(1+erf(x/√2)) = Φ(x) + x φ(x)
                let phi_cdf =
                    T::of(0.5) * (one + (x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = (T::of(-0.5) * x * x).exp() * T::of(0.398_942_280_401_432_7);
                phi_cdf + x * pdf
            }
            Unary::Clamp(lo, hi) => {
                if x > T::of(lo) && x < T::of(hi) {
                    one
                } else {
                    zero
                }
            }
        }
    }

    /// Forward over a tensor.
    pub fn forward<T: Float>(self, x: &ArrayD<T>) -> ArrayD<T> {
        if self == Unary::Gelu
            && let Some(y) = op_gelu::gelu(x, None)
        {
            return y;
        }
        par::map(x, move |v| self.value(v))
    }

    /// Backward: `g ⊙ f'(x)`.
    pub fn backward<T: Float>(self, g: &ArrayD<T>, x: &ArrayD<T>, y: &ArrayD<T>) -> ArrayD<T> {
        if self == Unary::Gelu
            && g.shape() == x.shape()
            && let Some(d) = op_gelu::gelu(x, Some(g))
        {
            return d;
        }
        par::zip3_map(g, x, y, move |g, x, y| g * self.derivative(x, y))
    }
}

/// Broadcasting binary arithmetic (numpy rules).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

/// The numpy broadcast shape of two shapes, or `None` if they are incompatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            return None;
        };
    }
    Some(out)
}

/// Sum `g` (of the broadcast shape) down to `shape`: the adjoint of broadcasting. Sums run in
/// index order (ndarray's `sum_axis`), so they are deterministic.
pub fn reduce_to_shape<T: Float>(g: ArrayD<T>, shape: &[usize]) -> ArrayD<T> {
    let mut g = g;
    while g.ndim() > shape.len() {
        g = g.sum_axis(Axis(0));
    }
    for (ax, &s) in shape.iter().enumerate() {
        if s == 1 && g.shape()[ax] != 1 {
            g = g.sum_axis(Axis(ax)).insert_axis(Axis(ax));
        }
    }
    g
}

impl Binary {
    /// Forward with broadcasting; panics on incompatible shapes (callers check first).
    pub fn forward<T: Float>(self, a: &ArrayD<T>, b: &ArrayD<T>) -> ArrayD<T> {
        if a.shape() == b.shape() {
            return match self {
                Binary::Add => par::zip_map(a, b, |x, y| x + y),
                Binary::Sub => par::zip_map(a, b, |x, y| x - y),
                Binary::Mul => par::zip_map(a, b, |x, y| x * y),
                Binary::Div => par::zip_map(a, b, |x, y| x / y),
            };
        }
        let shape = broadcast_shape(a.shape(), b.shape()).expect("shapes checked by the tape");
        let av = a.broadcast(IxDyn(&shape)).expect("broadcastable");
        let bv = b.broadcast(IxDyn(&shape)).expect("broadcastable");
        let mut out = ArrayD::<T>::zeros(IxDyn(&shape));
        let f = match self {
            Binary::Add => |x: T, y: T| x + y,
            Binary::Sub => |x: T, y: T| x - y,
            Binary::Mul => |x: T, y: T| x * y,
            Binary::Div => |x: T, y: T| x / y,
        };
        ndarray::Zip::from(&mut out)
            .and(&av)
            .and(&bv)
            .for_each(|o, &x, &y| *o = f(x, y));
        out
    }

    /// Gradients w.r.t. `a` and `b` (each reduced to its own shape). `need` says which to compute.
    pub fn backward<T: Float>(
        self,
        g: &ArrayD<T>,
        a: &ArrayD<T>,
        b: &ArrayD<T>,
        need: (bool, bool),
    ) -> (Option<ArrayD<T>>, Option<ArrayD<T>>) {
        let same = a.shape() == g.shape() && b.shape() == g.shape();
        let shape = g.shape().to_vec();
        let bcast = |x: &ArrayD<T>| -> ArrayD<T> {
            if x.shape() == shape.as_slice() {
                x.clone()
            } else {
                x.broadcast(IxDyn(&shape))
                    .expect("broadcastable")
                    .to_owned()
            }
        };
        let ga = need.0.then(|| {
            let full = match self {
                Binary::Add | Binary::Sub => g.clone(),
                Binary::Mul => {
                    if same {
                        par::zip_map(g, b, |g, y| g * y)
                    } else {
                        par::zip_map(g, &bcast(b), |g, y| g * y)
                    }
                }
                Binary::Div => par::zip_map(g, &bcast(b), |g, y| g / y),
            };
            reduce_to_shape(full, a.shape())
        });
        let gb = need.1.then(|| {
            let full = match self {
                Binary::Add => g.clone(),
                Binary::Sub => par::map(g, |g| -g),
                Binary::Mul => par::zip_map(g, &bcast(a), |g, x| g * x),
                Binary::Div => {
                    let (ab, bb) = (bcast(a), bcast(b));
                    par::zip3_map(g, &ab, &bb, |g, x, y| -g * x / (y * y))
                }
            };
            reduce_to_shape(full, b.shape())
        });
        (ga, gb)
    }
}
