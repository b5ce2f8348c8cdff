//! The optimizer side of a step: the learning-rate schedule, gradient clipping, AdamW over one
//! flat buffer, and the visitors that gather parameters and gradients from a model and put the
//! updated parameters back.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Gradients, Tensor, TensorData};

use crate::kernels;
use crate::spec::{RunSpec, Schedule};

/// Learning rate at `step` (0-based): linear warm-up to `lr` over `warmup` steps, then linear
/// decay to 0 at `steps` (HF `get_linear_schedule_with_warmup`, shifted by one so the first
/// step already learns).
///
/// With `sched=const` the rate stays at `lr` after warm-up.
pub fn lr_at(spec: &RunSpec, step: usize) -> f64 {
    if step < spec.warmup {
        spec.lr * (step + 1) as f64 / spec.warmup as f64
    } else if spec.sched == Schedule::Const {
        spec.lr
    } else {
        let left = spec.steps.saturating_sub(step) as f64;
        spec.lr * left / spec.steps.saturating_sub(spec.warmup).max(1) as f64
    }
}

/// Clipped softmax's (γ, ζ) at `step` (0-based): with `gamma_warmup` > 0 they ramp linearly
/// from plain softmax (0, 1) to their values, reached at step `gamma_warmup`; `None` for the
/// other variants. The ramp lets a fresh model's near-uniform attention through at α ≥ 1,
/// where the full γ would clip it to zero and stall every head (the dead start).
pub fn clip_at(spec: &RunSpec, step: usize) -> Option<(f64, f64)> {
    if spec.attn != crate::spec::AttnKind::Clipped {
        return None;
    }
    let (gamma, zeta) = (spec.gamma_effective(), spec.zeta_effective());
    let f = if spec.gamma_warmup == 0 {
        1.0
    } else {
        (step as f64 / spec.gamma_warmup as f64).min(1.0)
    };
    Some((gamma * f, 1.0 + (zeta - 1.0) * f))
}

/// Parameters exempt from weight decay: biases and LayerNorm weights, as in the paper's
/// scripts (`["bias", "LayerNorm.weight"]`), plus the other scalar-per-channel parameters
/// (gate logits, sink logits) that play the role of biases. With `ln_wd` the LayerNorm weight
/// (`gamma`) decays too, as in the paper's OPT scripts (`--wd_LN_gamma`).
const NO_DECAY: &[&str] = &[
    "bias",
    "bias1",
    "bias2",
    "beta",
    "gamma",
    "logit",
    "sink",
    "head_bias",
];

/// Where one parameter sits in the optimizer's flat buffers.
#[derive(Clone, Debug, PartialEq)]
struct Slot {
    id: ParamId,
    /// Values in the parameter.
    n: usize,
    /// Start of its segment in the flat buffers.
    off: usize,
    /// Whether weight decay applies (not to the [`NO_DECAY`] parameters).
    decay: bool,
}

/// The optimizer state of every parameter, packed like the gradients (see [`kernels::pack`]).
struct Flat {
    slots: Vec<Slot>,
    align: usize,
    /// First moments. `[total]`
    m: Tensor<1>,
    /// Second moments. `[total]`
    v: Tensor<1>,
    /// 1 where weight decay applies, 0 elsewhere and on the padding. `[total]`
    decay: Tensor<1>,
}

/// AdamW (PyTorch semantics: decoupled decay `p ← p·(1−lr·wd)`, bias-corrected moments).
/// Written here rather than taken from burn-optim because the paper's recipe needs a global
/// gradient-norm clip and a decay exclusion list, and both must stay on the device.
///
/// Every parameter, gradient and moment is packed into one flat buffer, so the norm and the
/// update are one reduction and one fused elementwise launch for the whole model rather than
/// two or three launches per parameter: in the browser a step's time is mostly per-launch
/// cost. The updated parameters are views into the new flat buffer.
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Decay LayerNorm γ as well (spec `ln_wd`).
    decay_ln_gamma: bool,
    clip: f64,
    t: i32,
    state: Option<Flat>,
    /// Moments of parameters that had no gradient at the last step, kept for when they
    /// return (PyTorch skips such parameters and keeps their state).
    parked: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    pub fn new(spec: &RunSpec) -> Self {
        AdamW {
            beta1: spec.beta1,
            beta2: spec.beta2,
            eps: spec.eps,
            weight_decay: spec.weight_decay,
            decay_ln_gamma: spec.ln_wd,
            clip: spec.clip,
            t: 0,
            state: None,
            parked: HashMap::new(),
        }
    }

    /// Applies one update; returns the global gradient norm (before clipping) as a device scalar.
    pub fn step<M: Module>(&mut self, model: M, mut grads: Gradients, lr: f64) -> (M, Tensor<1>) {
        let flat = collect_grads(&model, &mut grads);
        self.apply(model, flat, lr)
    }

    /// The moments for `slots`: last step's when the layout is unchanged (every step after
    /// the first), else rebuilt parameter by parameter, starting at zero for new ones.
    fn moments(&mut self, slots: &[Slot], align: usize, device: &Device) -> Flat {
        let old = self.state.take();
        if let Some(flat) = old.as_ref()
            && flat.slots == slots
            && flat.align == align
        {
            return old.expect("checked above");
        }
        // The layout changed: carry each parameter's moments over by id.
        if let Some(f) = old {
            for o in f.slots {
                let seg = |t: &Tensor<1>| kernels::segment(t.clone(), o.off, o.n); // [n]
                self.parked.insert(o.id, (seg(&f.m), seg(&f.v)));
            }
        }
        let (mut ms, mut vs) = (Vec::new(), Vec::new());
        for s in slots {
            let (m, v) = match self.parked.remove(&s.id) {
                Some((m, v)) if m.dims()[0] == s.n => (m, v),
                _ => (Tensor::zeros([s.n], device), Tensor::zeros([s.n], device)),
            };
            ms.push(m);
            vs.push(v);
        }
        let m = kernels::pack(ms, align); // [total]
        let v = kernels::pack(vs, align); // [total]
        let total = m.dims()[0];
        let mut mask = vec![0f32; total];
        for s in slots.iter().filter(|s| s.decay) {
            mask[s.off..s.off + s.n].fill(1.0);
        }
        let decay = Tensor::from_data(TensorData::new(mask, [total]), device);
        Flat {
            slots: slots.to_vec(),
            align,
            m,
            v,
            decay,
        }
    }

    /// Updates taken so far (the bias-correction exponent).
    pub fn updates(&self) -> i32 {
        self.t
    }

    /// Every parameter's moments `(m, v)` on the host, keyed by id: the last step's layout and
    /// the parked ones. For a checkpoint; reads back.
    pub fn export(&self) -> Result<HashMap<ParamId, (Vec<f32>, Vec<f32>)>, super::TrainError> {
        let mut out = HashMap::new();
        if let Some(f) = &self.state {
            let m = super::read_f32(f.m.clone())?;
            let v = super::read_f32(f.v.clone())?;
            for s in &f.slots {
                let r = s.off..s.off + s.n;
                out.insert(s.id, (m[r.clone()].to_vec(), v[r].to_vec()));
            }
        }
        for (id, (m, v)) in &self.parked {
            out.insert(
                *id,
                (super::read_f32(m.clone())?, super::read_f32(v.clone())?),
            );
        }
        Ok(out)
    }

    /// Restores what [`AdamW::export`] gave, after `updates` steps: the moments wait, parked,
    /// for the next update to pack them in the layout it finds (exactly as a layout change
    /// does), so the resumed update equals the uninterrupted one bit for bit.
    pub fn import(
        &mut self,
        updates: i32,
        moments: HashMap<ParamId, (Vec<f32>, Vec<f32>)>,
        device: &Device,
    ) {
        let device = device.clone().inner();
        let host = |x: Vec<f32>| {
            let n = x.len();
            Tensor::<1>::from_data(TensorData::new(x, [n]), &device) // [n]
        };
        self.t = updates;
        self.state = None;
        self.parked = moments
            .into_iter()
            .map(|(id, (m, v))| (id, (host(m), host(v))))
            .collect();
    }

    /// Applies one update from gradients already pulled out of the autodiff graph(s), keyed by
    /// parameter; returns the global gradient norm (before clipping).
    pub fn apply<M: Module>(
        &mut self,
        model: M,
        flat_grads: HashMap<ParamId, Tensor<1>>,
        lr: f64,
    ) -> (M, Tensor<1>) {
        let device = model
            .devices()
            .first()
            .cloned()
            .expect("model has a device")
            .inner();
        // Parameter-visit order, not hash order, so the layout (and the norm) is reproducible.
        let mut gather = Gather {
            grads: flat_grads,
            path: Vec::new(),
            found: Vec::new(),
            all: std::collections::HashSet::new(),
            decay_ln_gamma: self.decay_ln_gamma,
        };
        model.visit(&mut gather);
        // Moments parked for parameters the model no longer has would pin old buffers forever.
        self.parked.retain(|id, _| gather.all.contains(id));
        if gather.found.is_empty() {
            return (model, Tensor::zeros([1], &device));
        }
        let align = if kernels::active(&device) {
            kernels::PACK_ALIGN
        } else {
            1
        };
        let mut slots = Vec::with_capacity(gather.found.len());
        let (mut params, mut grads) = (Vec::new(), Vec::new());
        let mut off = 0;
        for (id, decay, p, g) in gather.found {
            let n = p.dims()[0];
            slots.push(Slot { id, n, off, decay });
            off += kernels::packed_len([n], align);
            params.push(p);
            grads.push(g);
        }
        let g = kernels::pack(grads, align); // [total]
        let p = kernels::pack(params, align); // [total]
        let norm = kernels::sum_all(g.clone().powi_scalar(2)).sqrt(); // [1]
        // PyTorch's clip_grad_norm_: coefficient max_norm/(norm+1e-6), capped at 1.
        let g = if self.clip > 0.0 {
            let scale = (norm.clone().add_scalar(1e-6))
                .recip()
                .mul_scalar(self.clip)
                .clamp_max(1.0); // [1]
            g * scale // [total] · [1]
        } else {
            g
        };
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let flat = self.moments(&slots, align, &device);
        let m = flat.m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1); // [total]
        let v = flat.v.mul_scalar(b2) + g.powi_scalar(2).mul_scalar(1.0 - b2); // [total]
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2 = 1.0 - b2.powi(self.t);
        let p = if self.weight_decay > 0.0 {
            // p·(1 − lr·wd·mask): exempt values are multiplied by exactly 1.
            p * flat
                .decay
                .clone()
                .mul_scalar(-lr * self.weight_decay)
                .add_scalar(1.0)
        } else {
            p
        };
        // p ← p − lr·m̂/(√v̂ + ε), with m̂ = m/bc1 and v̂ = v/bc2.
        let denom = v.clone().div_scalar(bc2).sqrt().add_scalar(self.eps);
        let p = p - m.clone().div(denom).mul_scalar(lr / bc1); // [total]
        self.state = Some(Flat { m, v, ..flat });
        let mut scatter = Scatter {
            p,
            slots: slots.into_iter().map(|s| (s.id, s)).collect(),
        };
        let model = model.map(&mut scatter);
        (model, norm)
    }
}

/// Collects, in visit order, each parameter that has a gradient: id, whether it decays, its
/// values and its gradient, both flattened.
struct Gather {
    grads: HashMap<ParamId, Tensor<1>>,
    path: Vec<String>,
    found: Vec<(ParamId, bool, Tensor<1>, Tensor<1>)>,
    /// Every parameter, with a gradient or not.
    all: std::collections::HashSet<ParamId>,
    decay_ln_gamma: bool,
}

impl ModuleVisitor for Gather {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.all.insert(param.id);
        let Some(grad) = self.grads.remove(&param.id) else {
            return;
        };
        // The field name, skipping list indices (`layers.0.bias` → `bias`).
        let field = self
            .path
            .iter()
            .rev()
            .find(|p| p.parse::<usize>().is_err())
            .map(String::as_str)
            .unwrap_or("");
        let p = param.val().inner();
        let n = p.shape().num_elements();
        self.found.push((
            param.id,
            !NO_DECAY.contains(&field) || (self.decay_ln_gamma && field == "gamma"),
            p.reshape([n]), // [n]
            grad,
        ));
    }
}

/// Replaces each updated parameter by its segment of the new flat buffer.
struct Scatter {
    p: Tensor<1>,
    slots: HashMap<ParamId, Slot>,
}

impl ModuleMapper for Scatter {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(s) = self.slots.remove(&param.id) else {
            return param;
        };
        let flat = &self.p;
        param.map(|tensor| {
            let shape = tensor.shape();
            let p = kernels::segment(flat.clone(), s.off, s.n); // [n], a view on a GPU
            Tensor::from_inner(p.reshape(shape)).require_grad()
        })
    }
}

/// Pulls every parameter's gradient out of `grads`, flattened, keyed by parameter id.
pub fn collect_grads<M: Module>(model: &M, grads: &mut Gradients) -> HashMap<ParamId, Tensor<1>> {
    let mut collect = GradCollector {
        grads,
        out: HashMap::new(),
    };
    model.visit(&mut collect);
    collect.out
}

/// Gives every parameter a fresh autodiff leaf, so that a shard's graph shares no node with
/// another shard's and Burn keeps their graphs (and locks) apart.
pub(super) struct Releaf;

impl ModuleMapper for Releaf {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| Tensor::from_inner(t.inner()).require_grad())
    }
}

/// Pulls every gradient out, flattened.
struct GradCollector<'a> {
    grads: &'a mut Gradients,
    out: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad_remove(self.grads) {
            let n = g.shape().num_elements();
            self.out.insert(param.id, g.reshape([n])); // [n]
        }
    }
}
