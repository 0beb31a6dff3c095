//! Training-mode bottleneck blocks (the whole chain of a ResNet's body) as one node of candle's graph,
//! with the backward pass written out.
//!
//! candle's backward pass gives every node's inputs their gradients by adding each into a buffer it first
//! fills with zeros (`zeros_like` + `add`, two passes over an activation-sized tensor, the first on one
//! thread), and keeps every node's output until the loss is dropped. A bottleneck block on the per-op path
//! is about seven nodes; the sixteen blocks as one node make one such sum (for the chain's input), the
//! gradients pass from op to op and block to block without that detour, and each block's intermediates
//! are freed as soon as its backward pass has run. Same kernels as the per-op path, so the same bits: the
//! convolutions and the first batch norms run without a graph (detached weights), the last batch norm
//! with the shortcut and the ReLU is, for the last block, the node's own forward pass (writing the output,
//! no copy; for the inner blocks the same op without a graph), and the backward pass chains the ops' own
//! backward functions. candle gives gradients only to an op's inputs: the parameters' go into the
//! network's [`ParamGrads`], which [`super::Network::backward`] merges. CPU, f32/f64, the im2col path;
//! [`super::resnet::ResNet`] takes the per-op path elsewhere and with gradient checkpointing.

use std::sync::{Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::conv::Conv;
use super::grads::ParamGrads;
use super::norm::Norm;
use crate::kernels::conv::{conv2d_im2col, conv2d_im2col_backward};
use crate::kernels::norm::{BlockEnd, NormTrain, relu_backward};

/// The parts of a bottleneck block (see [`super::bottleneck::Bottleneck`]).
pub(crate) struct Parts<'a> {
    pub conv1: &'a Conv,
    pub bn1: &'a Norm,
    pub conv2: &'a Conv,
    pub bn2: &'a Norm,
    pub conv3: &'a Conv,
    pub bn3: &'a Norm,
    pub downsample: Option<(&'a Conv, &'a Norm)>,
}

/// A convolution run without a graph: what its backward pass needs.
struct ConvSaved {
    /// The input, the detached weight, stride and padding.
    input: Tensor,
    weight: Tensor,
    stride_padding: (usize, usize),
    /// The variable's own weight: the key of its gradient.
    key: Tensor,
}

/// `conv(x)` without a graph.
fn convolve(conv: &Conv, x: &Tensor) -> Result<(Tensor, ConvSaved)> {
    let weight = conv.weight().detach();
    let (stride, padding) = conv.stride_padding();
    let product = conv2d_im2col(x, &weight, stride, padding)?;
    Ok((
        product,
        ConvSaved {
            input: x.clone(),
            weight,
            stride_padding: (stride, padding),
            key: conv.weight().clone(),
        },
    ))
}

impl ConvSaved {
    /// From the output gradient: the input's gradient (when `needs_dx`), the weight's into `sink`
    /// (when `needs_dw`).
    fn backward(
        &self,
        dproduct: &Tensor,
        needs_dx: bool,
        needs_dw: bool,
        sink: &ParamGrads,
    ) -> Result<Option<Tensor>> {
        let (dx, dw) = conv2d_im2col_backward(
            &self.input,
            &self.weight,
            self.stride_padding,
            dproduct,
            needs_dx,
            needs_dw,
        )?;
        if let Some(dw) = dw {
            sink.push(&self.key, dw)?;
        }
        Ok(dx)
    }
}

/// A convolution followed by training-mode batch norm, run without a graph: what its backward pass needs.
struct Stage {
    conv: ConvSaved,
    /// The convolution's output (the batch norm's input).
    product: Tensor,
    norm: NormTrain,
    /// The variables' own scale and shift: the keys of their gradients.
    keys: [Tensor; 2],
}

/// `conv` then `bn` (+ ReLU) on `x` without a graph.
fn stage(conv: &Conv, bn: &Norm, x: &Tensor, relu: bool) -> Result<(Tensor, Stage)> {
    let (product, saved) = convolve(conv, x)?;
    let (y, norm) = bn.train_detached(&product, relu)?;
    let (scale, shift) = bn.scale_and_shift()?;
    Ok((
        y,
        Stage {
            conv: saved,
            product,
            norm,
            keys: [scale, shift],
        },
    ))
}

impl Stage {
    /// From the gradient above the batch norm (above its ReLU when `relu`): the input's gradient (when
    /// `needs_dx`), the parameters' into `sink` (the convolution's when `needs_dw`).
    fn backward(
        &self,
        dy: &Tensor,
        relu: bool,
        (needs_dx, needs_dw): (bool, bool),
        sink: &ParamGrads,
    ) -> Result<Option<Tensor>> {
        let (dproduct, dscale, dshift) = self.norm.backward(&self.product, dy, relu)?;
        let [scale, shift] = &self.keys;
        push_norm(sink, scale, shift, &dscale, &dshift)?;
        self.conv.backward(&dproduct, needs_dx, needs_dw, sink)
    }
}

/// A batch norm's scale and shift gradients into `sink`, copied into storage of their own: they are
/// views into the buffer that also holds the input's gradient, which they would otherwise keep alive
/// until the pass ends (`Tensor::copy` clones the whole storage: measured +1.5 GB at 768² batch 2).
fn push_norm(
    sink: &ParamGrads,
    scale: &Tensor,
    shift: &Tensor,
    dscale: &Tensor,
    dshift: &Tensor,
) -> Result<()> {
    sink.push(scale, dscale.force_contiguous()?)?;
    sink.push(shift, dshift.force_contiguous()?)
}

/// Everything a block's backward pass needs.
struct Saved {
    first: Stage,
    second: Stage,
    /// The third convolution (its product is the last batch norm's input) and that norm.
    third: ConvSaved,
    product: Tensor,
    end: BlockEnd,
    end_keys: [Tensor; 2],
    shortcut: Option<Stage>,
    /// The block's output, for the ReLU's backward pass (the node's own output for the last block).
    output: Option<Tensor>,
}

/// The blocks' forward pass up to the last batch norm: `(product, shortcut, saved)` (no graph).
fn block_body(parts: &Parts, x: &Tensor) -> Result<(Tensor, Tensor, Saved)> {
    let (y1, first) = stage(parts.conv1, parts.bn1, x, true)?;
    let (y2, second) = stage(parts.conv2, parts.bn2, &y1, true)?;
    let (product, third) = convolve(parts.conv3, &y2)?;
    let (shortcut_out, shortcut) = match parts.downsample {
        Some((conv, bn)) => {
            let (s, st) = stage(conv, bn, x, false)?;
            (s, Some(st))
        }
        None => (x.clone(), None),
    };
    let (scale, shift) = parts.bn3.scale_and_shift()?;
    let saved = Saved {
        first,
        second,
        third,
        product: product.clone(),
        end: parts.bn3.block_end(x.dtype())?,
        end_keys: [scale, shift],
        shortcut,
        output: None,
    };
    Ok((product, shortcut_out, saved))
}

impl Saved {
    /// From the gradient of the block's output: its input's gradient (when `needs_dx`), the
    /// parameters' into `sink` (the convolutions' when `weight_grads`).
    fn backward(
        self,
        grad: &Tensor,
        output: &Tensor,
        needs_dx: bool,
        weight_grads: bool,
        sink: &ParamGrads,
    ) -> Result<Option<Tensor>> {
        // Below the final ReLU: the gradient of the sum, the shortcut's and the third batch norm's.
        let dz = relu_backward(grad, output)?;
        let (dproduct, dscale, dshift) = self.end.backward(&self.product, &dz)?;
        let [scale3, shift3] = &self.end_keys;
        push_norm(sink, scale3, shift3, &dscale, &dshift)?;
        let missing = || candle_core::Error::Msg("bottleneck block: no input gradient".into());
        let dw = weight_grads;
        let dy2 = self.third.backward(&dproduct, true, dw, sink)?;
        drop(dproduct);
        let dy1 = self
            .second
            .backward(&dy2.ok_or_else(missing)?, true, (true, dw), sink)?;
        let dx = self
            .first
            .backward(&dy1.ok_or_else(missing)?, true, (needs_dx, dw), sink)?;
        let dshortcut = match &self.shortcut {
            Some(stage) => stage.backward(&dz, false, (needs_dx, dw), sink)?,
            None => Some(dz),
        };
        drop(self);
        match (dx, dshortcut) {
            (Some(a), Some(b)) if needs_dx => Ok(Some((a + b)?)),
            _ => Ok(None),
        }
    }
}

/// The end of an inner block of a chain, `(x, product, shortcut)` → `relu(bn3(product) + shortcut)`,
/// run without a graph.
struct EndOp(BlockEnd);

impl CustomOp3 for EndOp {
    fn name(&self) -> &'static str {
        "sacro-bottleneck-end"
    }

    fn cpu_fwd(
        &self,
        _xs: &CpuStorage,
        _xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0.forward(ps, pl, rs, rl)
    }
}

/// The node: `(x, the last block's conv3 product, its shortcut)` → the last block's output.
struct ChainOp {
    /// The last block's end.
    end: EndOp,
    /// Taken by the backward pass (each block's intermediates are freed once its backward pass ran).
    saved: Mutex<Option<Vec<Saved>>>,
    sink: ParamGrads,
    /// Whether the convolutions' weights get gradients (not while the body is frozen).
    weight_grads: bool,
}

/// `blocks(x)` in training mode (the blocks applied in turn) as one node (see the module's
/// documentation); the convolutions' weights get gradients only when `weight_grads` (a frozen body's do
/// not: their passes are skipped).
pub(crate) fn forward(
    blocks: &[Parts],
    x: &Tensor,
    sink: &ParamGrads,
    weight_grads: bool,
) -> Result<Tensor> {
    let Some((last, inner)) = blocks.split_last() else {
        return Ok(x.clone());
    };
    let x = x.contiguous()?;
    let mut h = x.detach();
    let mut saved = Vec::with_capacity(blocks.len());
    for parts in inner {
        let (product, shortcut, mut block) = block_body(parts, &h)?;
        h = h.apply_op3_no_bwd(&product, &shortcut, &EndOp(block.end.clone()))?;
        parts.bn3.update_running(&block.end.stats()?)?;
        block.output = Some(h.clone());
        saved.push(block);
    }
    let (product, shortcut, block) = block_body(last, &h)?;
    let end = block.end.clone();
    saved.push(block);
    let op = ChainOp {
        end: EndOp(end.clone()),
        saved: Mutex::new(Some(saved)),
        sink: sink.clone(),
        weight_grads,
    };
    let out = x.apply_op3(&product, &shortcut, op)?;
    last.bn3.update_running(&end.stats()?)?;
    Ok(out)
}

impl CustomOp3 for ChainOp {
    fn name(&self) -> &'static str {
        "sacro-bottlenecks-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.end.cpu_fwd(xs, xl, ps, pl, rs, rl)
    }

    fn bwd(
        &self,
        x: &Tensor,
        _product: &Tensor,
        _shortcut: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut saved = self
            .saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                candle_core::Error::Msg("bottleneck blocks: a second backward pass".into())
            })?;
        let mut grad = grad.clone();
        let mut output = res.clone();
        while let Some(block) = saved.pop() {
            let first = saved.is_empty();
            let needs_dx = !first || x.track_op();
            let dx = block.backward(&grad, &output, needs_dx, self.weight_grads, &self.sink)?;
            let Some(dx) = dx else {
                return Ok((None, None, None));
            };
            if let Some(previous) = saved.last() {
                output = previous.output.clone().ok_or_else(|| {
                    candle_core::Error::Msg("bottleneck blocks: an inner output is missing".into())
                })?;
            }
            grad = dx;
        }
        Ok((Some(grad), None, None))
    }
}
