//! The parameter store: every trainable tensor of a model under a dotted name (method §18:
//! `vit.block0.attn.W_q`, `gat.W1`, `smm.mu`, …), in insertion order, addressed by [`ParamId`].
//!
//! A training step binds the store to a fresh tape ([`ParamStore::bind`]), runs the forward pass on
//! the bound leaves, back-propagates, collects the gradients per parameter ([`Bound::grads`] /
//! [`Bound::take_grads`]) and hands them to the optimiser, which writes the new values back into
//! the store.
//!
//! # Files
//!
//! [`ParamStore::save`] writes one safetensors file with one tensor per parameter, named by its
//! dotted name, in the store's precision (`F32` or `F64`), shapes as in docs/method.md (row-vector
//! convention: a Linear weight is `[d_in, d_out]`, method §0). Non-trainable buffers (BatchNorm
//! running statistics) can be written into the same file with [`ParamStore::to_tensor_file_with`].
//! numpy or PyTorch read it by name with the `safetensors` package alone:
//!
//! ```python
//! from safetensors.numpy import load_file      # or: from safetensors.torch import load_file
//! w = load_file("params.safetensors")          # {name: array}
//! W_q = w["vit.block0.attn.W_q"]               # shape [D, D], used as  Q = Y @ W_q + b_q
//! # a torch.nn.Linear stores weight as [d_out, d_in]:  lin.weight.data = torch.from_numpy(W_q.T)
//! ```

use crate::autodiff::{Grads, Tape, Var};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::io::{TensorData, TensorFile};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::path::Path;

/// A parameter's handle in its [`ParamStore`] (its insertion index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamId(pub usize);

/// Named trainable tensors in insertion order (method §18 dotted names).
#[derive(Clone, Debug, Default)]
pub struct ParamStore<T: Float> {
    names: Vec<String>,
    values: Vec<ArrayD<T>>,
    index: BTreeMap<String, ParamId>,
}

/// The leaves of one tape that hold a store's parameters: `vars[id.0]` is parameter `id`.
#[derive(Clone, Debug)]
pub struct Bound {
    pub vars: Vec<Var>,
}

impl Bound {
    /// The tape leaf of parameter `id`.
    #[inline]
    pub fn var(&self, id: ParamId) -> Var {
        self.vars[id.0]
    }

    /// The gradient of every parameter (index = `ParamId.0`), zeros where nothing flowed in.
    pub fn grads<T: Float>(&self, g: &Grads<T>, store: &ParamStore<T>) -> Vec<ArrayD<T>> {
        self.vars
            .iter()
            .enumerate()
            .map(|(i, &v)| g.get_or_zeros(v, store.get(ParamId(i)).shape()))
            .collect()
    }

    /// The gradients of `ids` (same order), moved out of `g` (no copy); zeros where nothing
    /// flowed in. This is what an optimiser step over a subset of the store wants.
    pub fn take_grads<T: Float>(
        &self,
        g: &mut Grads<T>,
        store: &ParamStore<T>,
        ids: &[ParamId],
    ) -> Vec<ArrayD<T>> {
        ids.iter()
            .map(|&id| {
                g.take(self.var(id))
                    .unwrap_or_else(|| ArrayD::zeros(IxDyn(store.get(id).shape())))
            })
            .collect()
    }
}

impl<T: Float> ParamStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        ParamStore {
            names: Vec::new(),
            values: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    /// Register a parameter under a dotted name.
    ///
    /// # Panics
    /// On a duplicate or empty name: names are fixed by the model's code (method §18), so a clash is
    /// a programming error, not a user error.
    pub fn add(&mut self, name: &str, value: ArrayD<T>) -> ParamId {
        assert!(!name.is_empty(), "ParamStore::add: empty parameter name");
        assert!(
            !self.index.contains_key(name),
            "ParamStore::add: duplicate parameter name `{name}`"
        );
        let id = ParamId(self.values.len());
        self.names.push(name.to_string());
        self.values.push(value);
        self.index.insert(name.to_string(), id);
        id
    }

    /// The value of parameter `id`.
    #[inline]
    pub fn get(&self, id: ParamId) -> &ArrayD<T> {
        &self.values[id.0]
    }

    /// The value of parameter `id`, mutably (optimisers, EMA, loading).
    #[inline]
    pub fn get_mut(&mut self, id: ParamId) -> &mut ArrayD<T> {
        &mut self.values[id.0]
    }

    /// The id of a dotted name.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.index.get(name).copied()
    }

    /// The id of a dotted name, or an error naming it (for callers resolving names from files or
    /// configuration).
    pub fn require(&self, name: &str) -> Result<ParamId> {
        self.id(name)
            .ok_or_else(|| DarlcError::param(name, "no parameter of this name in the model"))
    }

    /// The dotted name of parameter `id`.
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }

    /// All ids in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = ParamId> + '_ {
        (0..self.values.len()).map(ParamId)
    }

    /// The ids whose names start with the dotted `prefix` (`"vit"` matches `vit.W_pe` and
    /// `vit.block0.ln1.gamma`, not `vitx.W`), in insertion order.
    pub fn ids_with_prefix(&self, prefix: &str) -> Vec<ParamId> {
        let dotted = format!("{prefix}.");
        self.ids()
            .filter(|&id| {
                let n = self.name(id);
                n == prefix || n.starts_with(&dotted)
            })
            .collect()
    }

    /// A new store holding copies of `ids` (in that order, so new id `i` ↔ `ids[i]`), named
    /// `prefix.name` when a prefix is given (e.g. the EMA target `target.vit.*` of method §4.3,
    /// initialised as exact copies of the online weights).
    pub fn copy_subset(&self, ids: &[ParamId], prefix: Option<&str>) -> ParamStore<T> {
        let mut out = ParamStore::new();
        for &id in ids {
            let name = match prefix {
                Some(p) => format!("{p}.{}", self.name(id)),
                None => self.name(id).to_string(),
            };
            out.add(&name, self.get(id).clone());
        }
        out
    }

    /// Parameter `a` mutably and a different parameter `b` immutably (EMA within one store).
    ///
    /// # Panics
    /// If `a == b`.
    pub fn pair_mut(&mut self, a: ParamId, b: ParamId) -> (&mut ArrayD<T>, &ArrayD<T>) {
        assert_ne!(a, b, "pair_mut: the same parameter twice");
        if a.0 < b.0 {
            let (lo, hi) = self.values.split_at_mut(b.0);
            (&mut lo[a.0], &hi[0])
        } else {
            let (lo, hi) = self.values.split_at_mut(a.0);
            (&mut hi[0], &lo[b.0])
        }
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True if the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Total number of scalars over all parameters.
    pub fn num_scalars(&self) -> usize {
        self.values.iter().map(|v| v.len()).sum()
    }

    /// Every parameter as a tape leaf (`t.param`, so gradients are recorded on a recording tape;
    /// on a [`Tape::no_grad`] tape nothing is recorded). The values are copied onto the tape.
    pub fn bind(&self, t: &mut Tape<T>) -> Bound {
        Bound {
            vars: self.values.iter().map(|v| t.param(v.clone())).collect(),
        }
    }

    /// Every parameter as a constant leaf: for forward passes that must not produce parameter
    /// gradients on a recording tape (the EMA target encoder of method §4.3).
    pub fn bind_frozen(&self, t: &mut Tape<T>) -> Bound {
        Bound {
            vars: self.values.iter().map(|v| t.constant(v.clone())).collect(),
        }
    }

    /// Parameters for which `trainable(id)` holds become `t.param` leaves, the others constants.
    pub fn bind_with(&self, t: &mut Tape<T>, trainable: impl Fn(ParamId) -> bool) -> Bound {
        Bound {
            vars: self
                .ids()
                .map(|id| {
                    let v = self.get(id).clone();
                    if trainable(id) {
                        t.param(v)
                    } else {
                        t.constant(v)
                    }
                })
                .collect(),
        }
    }

    /// One tensor per parameter, named by its dotted name, in the store's precision.
    pub fn to_tensor_file(&self) -> TensorFile {
        let mut f = TensorFile::new();
        for id in self.ids() {
            f.insert_float(self.name(id), self.get(id).clone());
        }
        f
    }

    /// [`Self::to_tensor_file`] plus named non-trainable buffers (e.g. BatchNorm running
    /// statistics from `BatchNorm1d::buffers`). A buffer whose name is also a parameter's is an
    /// error naming it.
    pub fn to_tensor_file_with(
        &self,
        buffers: impl IntoIterator<Item = (String, ArrayD<T>)>,
    ) -> Result<TensorFile> {
        let mut f = self.to_tensor_file();
        for (name, value) in buffers {
            if f.tensors.contains_key(&name) {
                return Err(DarlcError::param(
                    name,
                    "buffer name collides with a parameter or another buffer",
                ));
            }
            f.insert_float(name, value);
        }
        Ok(f)
    }

    /// Save every parameter to a safetensors file (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.to_tensor_file().save(path)
    }

    /// Overwrite every parameter with the tensor of the same name in `path`. Every parameter must
    /// be present with the same shape (errors name the file and the tensor); F32 or F64 files are
    /// accepted and converted to the store's precision. Extra tensors in the file (buffers, other
    /// models) are ignored. Nothing is changed unless every parameter loads.
    pub fn load_into(&mut self, path: &Path) -> Result<()> {
        let f = TensorFile::load(path)?;
        self.load_from(&f, path)
    }

    /// [`Self::load_into`] from an already-read file (`path` is used in error messages).
    pub fn load_from(&mut self, file: &TensorFile, path: &Path) -> Result<()> {
        let mut new_values = Vec::with_capacity(self.len());
        for id in self.ids() {
            let name = self.name(id);
            new_values.push(read_float_tensor::<T>(
                file,
                path,
                name,
                self.get(id).shape(),
            )?);
        }
        self.values = new_values;
        Ok(())
    }
}

/// A float tensor `name` of `file` with the expected `shape`, converted to `T`; errors name the
/// file and the tensor.
pub fn read_float_tensor<T: Float>(
    file: &TensorFile,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<ArrayD<T>> {
    let t = file.get(name, path)?;
    if !matches!(t, TensorData::F32(_) | TensorData::F64(_)) {
        return Err(DarlcError::format(
            path,
            None,
            format!(
                "tensor `{name}` has dtype {}, expected F32 or F64",
                t.dtype_name()
            ),
        ));
    }
    if t.shape() != shape {
        return Err(DarlcError::format(
            path,
            None,
            format!(
                "tensor `{name}` has shape {:?}, the model expects {:?}",
                t.shape(),
                shape
            ),
        ));
    }
    Ok(t.to_float::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn names_ids_and_prefixes() {
        let mut s = ParamStore::<f64>::new();
        let a = s.add("vit.W_pe", array![[1.0, 2.0]].into_dyn());
        let b = s.add("vit.block0.ln1.gamma", array![1.0].into_dyn());
        let c = s.add("vitx.W", array![3.0].into_dyn());
        assert_eq!((a, b, c), (ParamId(0), ParamId(1), ParamId(2)));
        assert_eq!(s.id("vit.block0.ln1.gamma"), Some(b));
        assert_eq!(s.id("nope"), None);
        assert!(s.require("nope").unwrap_err().to_string().contains("nope"));
        assert_eq!(s.name(c), "vitx.W");
        assert_eq!(s.ids_with_prefix("vit"), vec![a, b]);
        assert_eq!(s.num_scalars(), 4);
        assert_eq!(s.len(), 3);
    }

    #[test]
    #[should_panic(expected = "duplicate parameter name `x.W`")]
    fn duplicate_name_panics() {
        let mut s = ParamStore::<f32>::new();
        s.add("x.W", array![1.0f32].into_dyn());
        s.add("x.W", array![1.0f32].into_dyn());
    }

    #[test]
    fn bind_variants_record_as_asked() {
        let mut s = ParamStore::<f64>::new();
        let a = s.add("a", array![1.0, 2.0].into_dyn());
        let b = s.add("b", array![3.0, 4.0].into_dyn());
        let mut t = Tape::new();
        let bound = s.bind_with(&mut t, |id| id == a);
        let p = t.mul(bound.var(a), bound.var(b));
        let y = t.sum(p);
        let mut g = t.backward(y);
        let all = bound.grads(&g, &s);
        // d/da Σ a⊙b = b = [3, 4]; b is a constant, so its gradient is reported as zeros.
        assert_eq!(all[0], array![3.0, 4.0].into_dyn());
        assert_eq!(all[1], array![0.0, 0.0].into_dyn());
        let taken = bound.take_grads(&mut g, &s, &[b, a]);
        assert_eq!(taken[0], array![0.0, 0.0].into_dyn());
        assert_eq!(taken[1], array![3.0, 4.0].into_dyn());
    }
}
