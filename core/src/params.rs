//! Float parameters by name: list them, and load them from host arrays.
//!
//! A parameter's name is its dotted path of struct fields and `Vec` indices in the module tree,
//! e.g. `layers.0.attn.qkv.weight` or `emb_ln.gamma`. Enum variants add nothing (Burn's
//! visitors would add `Bert.`), so a [`Model`](crate::model::Model) and the
//! [`Bert`](crate::model::Bert) inside it name their parameters alike; neither does an
//! `Option`. Layouts are qtlab's: a `Linear` weight is `[d_in, d_out]`.
//!
//! This is how the golden test (`tests/golden.rs`) puts weights drawn by an independent
//! PyTorch implementation (`scripts/golden.py`) into qtlab's models, and how it names the
//! gradients it compares ([`names`] pairs each path with the id that
//! [`crate::train::collect_grads`] keys gradients by).

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

/// One parameter's values on the host, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostArray {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Every float parameter's path, shape and id, in visiting order.
pub fn names<M: Module>(module: &M) -> Vec<(String, Vec<usize>, ParamId)> {
    let mut v = Names {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}

/// `module` with every float parameter replaced by the array of the same path, on the
/// parameter's device; ids and whether a parameter takes gradients are kept.
///
/// `arrays` must name exactly the module's parameters, with their shapes: a parameter left
/// out, a name that matches nothing and a shape mismatch are all errors (listed together),
/// so a fixture cannot silently leave part of a model at its initial values.
pub fn load<M: Module>(module: M, arrays: &BTreeMap<String, HostArray>) -> Result<M, String> {
    let params = names(&module);
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = params.iter().map(|(n, _, _)| n.as_str()).collect();
    for (name, shape, _) in &params {
        match arrays.get(name) {
            None => problems.push(format!("`{name}` {shape:?}: no array given")),
            Some(a) if &a.shape != shape => problems.push(format!(
                "`{name}`: array has shape {:?}, the parameter {shape:?}",
                a.shape
            )),
            Some(a) if a.values.len() != shape.iter().product::<usize>() => problems.push(format!(
                "`{name}`: {} values for shape {shape:?}",
                a.values.len()
            )),
            Some(_) => {}
        }
    }
    for name in arrays.keys().filter(|n| !known.contains(n.as_str())) {
        problems.push(format!("`{name}`: no such parameter"));
    }
    if !problems.is_empty() {
        return Err(format!(
            "cannot load parameters:\n  {}",
            problems.join("\n  ")
        ));
    }
    Ok(module.map(&mut Load {
        path: Vec::new(),
        arrays,
    }))
}

/// Every float parameter's values on the host, by path (reads back; for checkpoints).
pub fn read<M: Module>(module: &M) -> Result<BTreeMap<String, HostArray>, String> {
    let mut v = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
        .into_iter()
        .map(|(name, shape, t)| {
            let values = t
                .try_into_data()
                .map_err(|e| format!("cannot read `{name}`: {e:?}"))?
                .try_into_vec::<f32>()
                .map_err(|e| format!("cannot read `{name}`: {e:?}"))?;
            Ok((name, HostArray { shape, values }))
        })
        .collect()
}

struct Collect {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        enter(&mut self.path, name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        exit(&mut self.path, container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().inner();
        let shape = t.dims().to_vec();
        let n: usize = shape.iter().product();
        self.out.push((self.path.join("."), shape, t.reshape([n]))); // [n]
    }
}

struct Names {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, ParamId)>,
}

/// Enters `name` into `path` unless it is an enum variant.
fn enter(path: &mut Vec<String>, name: &str, container_type: &str) {
    if !container_type.starts_with("Enum:") {
        path.push(name.to_string());
    }
}

fn exit(path: &mut Vec<String>, container_type: &str) {
    if !container_type.starts_with("Enum:") {
        path.pop();
    }
}

impl ModuleVisitor for Names {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        enter(&mut self.path, name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        exit(&mut self.path, container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.val().dims().to_vec();
        self.out.push((self.path.join("."), shape, param.id));
    }
}

struct Load<'a> {
    path: Vec<String>,
    arrays: &'a BTreeMap<String, HostArray>,
}

impl ModuleMapper for Load<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        enter(&mut self.path, name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        exit(&mut self.path, container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        // `load` checked every path and shape before mapping.
        let a = &self.arrays[&self.path.join(".")];
        param.map(|old| {
            let shape: [usize; D] = old.dims();
            let new = Tensor::from_data(TensorData::new(a.values.clone(), shape), &old.device());
            if old.is_require_grad() {
                new.require_grad()
            } else {
                new
            }
        })
    }
}
