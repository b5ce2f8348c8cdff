//! Parameter initialisation from the run's `init` stream.
//!
//! Values are drawn on the host with our own RNG and uploaded, so the initial weights are
//! bit-identical on every backend: a shared link starts from the same model everywhere.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use crate::rng::Rng;

pub struct Init {
    rng: Rng,
}

impl Init {
    pub fn new(rng: Rng) -> Self {
        Init { rng }
    }

    fn values(&mut self, n: usize, mut f: impl FnMut(&mut Rng) -> f64) -> Vec<f32> {
        (0..n).map(|_| f(&mut self.rng) as f32).collect()
    }

    fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// U(±1/√fan_in): PyTorch's default `nn.Linear` init for weight and bias.
    pub fn uniform_param<const D: usize>(
        &mut self,
        shape: [usize; D],
        fan_in: usize,
        device: &Device,
    ) -> Param<Tensor<D>> {
        let k = 1.0 / (fan_in.max(1) as f64).sqrt();
        let v = self.values(shape.iter().product(), |r| r.uniform(-k, k));
        Param::from_tensor(Self::tensor(v, shape, device))
    }

    /// N(0, std²), the HF init for embeddings and non-attention Linear weights.
    pub fn normal_param<const D: usize>(
        &mut self,
        shape: [usize; D],
        std: f64,
        device: &Device,
    ) -> Param<Tensor<D>> {
        let v = self.values(shape.iter().product(), |r| std * r.normal());
        Param::from_tensor(Self::tensor(v, shape, device))
    }

    /// Linear with PyTorch's default init (used for Q/K/V, the output projection and gates).
    pub fn linear_default(&mut self, d_in: usize, d_out: usize, device: &Device) -> Linear {
        Linear {
            weight: self.uniform_param([d_in, d_out], d_in, device),
            bias: Some(self.uniform_param([d_out], d_in, device)),
        }
    }

    /// Linear with the HF init: weight N(0, std²), bias 0.
    pub fn linear_normal(
        &mut self,
        d_in: usize,
        d_out: usize,
        std: f64,
        device: &Device,
    ) -> Linear {
        Linear {
            weight: self.normal_param([d_in, d_out], std, device),
            bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
        }
    }

    pub fn embedding(&mut self, n: usize, d: usize, std: f64, device: &Device) -> Embedding {
        Embedding {
            weight: self.normal_param([n, d], std, device),
        }
    }

    /// LayerNorm with γ = 1, β = 0 and PyTorch's ε = 1e-5.
    pub fn layer_norm(&mut self, d: usize, device: &Device) -> LayerNorm {
        LayerNormConfig::new(d)
            .with_epsilon(crate::kernels::LN_EPS)
            .init(device)
    }
}
