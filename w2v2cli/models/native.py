"""wav2vec 2.0 CTC in plain PyTorch: the torch backend's model on the CPU, without transformers.

Why: transformers' modeling code imports torch's compiler and distributed stacks
(``torch._dynamo``, ``torch.distributed.tensor``, sympy, scipy): about 5 s and 150 MB at
start-up on a 2-core machine, for a forward pass that is a few dozen torch calls. This
module makes those calls itself, for the checkpoints most users have (wav2vec2 fine-tunes:
base, large, XLSR, XLS-R, converted fairseq and NVIDIA checkpoints), and reads their
weights straight from the folder.

**Same numbers, bit for bit.** ``Wav2Vec2ForCTC.forward`` in eval mode with its default
attention (SDPA) is the same sequence of torch calls on the same tensors: convolutions,
group or layer norm, GELU, the feature projection, padded frames zeroed, the weight-normed
positional convolution, post- or pre-norm transformer layers with
``scaled_dot_product_attention`` (a boolean mask of shape ``(B, 1, T, T)`` where an item is
padded, none otherwise), the CTC head. The tests compare the logits with ``torch.equal``
against transformers' model on the same weights: group- and layer-norm encoders, padded
and unpadded batches, float32 and bfloat16, legacy ``weight_g``/``weight_v`` names and
``.bin`` files, several thread counts (the positional weight's weight norm is computed
per thread count, as its last bits depend on it), one-frame items (whose last bits depend
on the weights' alignment, so the weights sit at the addresses, modulo the page size, of
transformers' memory map of the file: ``read_safetensors``). Exact batching (``inference/exact.py``)
is built in: with ``itemwise`` on, each item's samples run through the convolutions alone,
unpadded.

**Only where it is the same model.** ``load_native`` (``native_loading.py``) returns
None, and transformers loads the model as before, for anything outside the common case:
another family, an adapter (``add_adapter``) or MMS language adapters, an activation other
than GELU or ReLU, an attention implementation other than SDPA, a ``quantization_config``,
sharded weights, or weights whose names or shapes do not map one to one onto the model
(two names for one parameter included; a checkpoint transformers would load with missing
or renamed keys gets transformers' own handling and messages). CUDA stays on
transformers' model: this path has been measured on CPUs only.

**Memory.** Weights are read from ``model.safetensors`` with plain file reads into their
arrays (in a thread, while torch is imported): no memory map whose pages would count a
second time while loading, and no transformers modules (0.15 GB of imports). The forward
pass allocates what transformers' does (the same calls); its peak is the feature
encoder's second convolution, whose unfolded input (``im2col``, 0.2 GB for a 20 s chunk)
sits beside the first layer's output. Computing it in time blocks would lower that peak
but changes the last bits of some outputs (the matrix kernels treat the block edges
differently), so it is not done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The activations whose transformers implementation is exactly this torch function.
_ACTIVATIONS = ("gelu", "relu")


@dataclass(frozen=True)
class NativeConfig:
    """The config fields the forward pass reads (defaults: transformers' ``Wav2Vec2Config``)."""

    conv_dim: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    conv_bias: bool
    feat_extract_norm: str
    feat_extract_activation: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    layer_norm_eps: float
    num_conv_pos_embeddings: int
    num_conv_pos_embedding_groups: int
    do_stable_layer_norm: bool
    vocab_size: int

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> NativeConfig | None:
        """The config of a plain ``Wav2Vec2ForCTC``, or None for anything else."""
        if raw.get("model_type") != "wav2vec2" or list(raw.get("architectures") or []) != [
            "Wav2Vec2ForCTC"
        ]:
            return None
        if raw.get("add_adapter") or raw.get("adapter_attn_dim") is not None:
            return None
        if raw.get("quantization_config"):  # transformers would quantize the weights
            return None
        if raw.get("_attn_implementation", raw.get("attn_implementation")) not in (None, "sdpa"):
            return None
        try:
            config = cls(
                conv_dim=tuple(int(d) for d in raw.get("conv_dim", (512,) * 7)),
                conv_kernel=tuple(int(k) for k in raw["conv_kernel"]),
                conv_stride=tuple(int(s) for s in raw["conv_stride"]),
                conv_bias=bool(raw.get("conv_bias", False)),
                feat_extract_norm=str(raw.get("feat_extract_norm", "group")),
                feat_extract_activation=str(raw.get("feat_extract_activation", "gelu")),
                hidden_size=int(raw.get("hidden_size", 768)),
                num_hidden_layers=int(raw.get("num_hidden_layers", 12)),
                num_attention_heads=int(raw.get("num_attention_heads", 12)),
                intermediate_size=int(raw.get("intermediate_size", 3072)),
                hidden_act=str(raw.get("hidden_act", "gelu")),
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-5)),
                num_conv_pos_embeddings=int(raw.get("num_conv_pos_embeddings", 128)),
                num_conv_pos_embedding_groups=int(raw.get("num_conv_pos_embedding_groups", 16)),
                do_stable_layer_norm=bool(raw.get("do_stable_layer_norm", False)),
                vocab_size=int(raw.get("vocab_size", 32)),
            )
        except (KeyError, TypeError, ValueError):
            return None
        layers = int(raw.get("num_feat_extract_layers", len(config.conv_dim)))
        if not (
            len(config.conv_dim) == len(config.conv_kernel) == len(config.conv_stride) == layers
            and config.feat_extract_norm in ("group", "layer")
            and config.feat_extract_activation in _ACTIVATIONS
            and config.hidden_act in _ACTIVATIONS
            and config.hidden_size % config.num_attention_heads == 0
        ):
            return None
        return config

    def output_lengths(self, samples: int) -> int:
        """``_get_feat_extract_output_lengths`` for one item (no clamping, as there)."""
        n = samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride, strict=True):
            n = (n - kernel) // stride + 1
        return n


@dataclass
class CTCOutput:
    """What callers read from a transformers CTC model's output."""

    logits: Any


class NativeWav2Vec2ForCTC:
    """``Wav2Vec2ForCTC`` in eval mode (module docstring); called like it, returns logits.

    ``model(input_values, attention_mask=None, lengths=None)``: ``lengths`` (the samples of
    each item, from the host) or a prefix ``attention_mask`` marks the padding; with
    neither, the batch is taken as it is. ``itemwise`` (exact batching) runs each padded
    item's convolutions alone.
    """

    def __init__(self, config: NativeConfig, weights: dict[str, Any]) -> None:
        self.config = config
        self.itemwise = True
        self._w = weights
        self._pos_weights: dict[int, Any] = {}
        self.dtype = weights["lm_head.weight"].dtype

    # -- the transformers model's interface used by this package and its tests ----------
    def __call__(
        self, input_values: Any, attention_mask: Any = None, lengths: list[int] | None = None
    ) -> CTCOutput:
        if lengths is None and attention_mask is not None:
            lengths = [int(n) for n in attention_mask.sum(-1).tolist()]
        return CTCOutput(self.logits(input_values, lengths))

    def eval(self) -> NativeWav2Vec2ForCTC:
        return self

    def parameters(self) -> Any:
        return iter(self._w.values())

    def _pos_weight(self) -> Any:
        """The positional convolution's weight: the weight-norm parametrization's own
        computation (``torch._weight_norm``), kept per thread count, because its reduction,
        and so its last bits, depend on how many threads share it (as transformers' weight,
        computed at every call, does)."""
        import torch

        threads = torch.get_num_threads()
        weight = self._pos_weights.get(threads)
        if weight is None:
            pos = "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight"
            weight = torch._weight_norm(self._w[f"{pos}.original1"], self._w[f"{pos}.original0"], 2)
            self._pos_weights[threads] = weight
        return weight

    # -- the forward pass -----------------------------------------------------------------
    def logits(self, input_values: Any, lengths: list[int] | None) -> Any:
        import torch.nn.functional as F

        c, w = self.config, self._w
        batch, width = input_values.shape
        if lengths is not None and self.itemwise and not (batch == 1 and lengths[0] >= width):
            features = run_itemwise(self.features, input_values, lengths, c.output_lengths(width))
        else:
            features = self.features(input_values)
        features = features.transpose(1, 2)
        frames = features.shape[1]
        mask = None if lengths is None else self._frame_mask(lengths, frames)

        p = "wav2vec2.feature_projection"
        normed = F.layer_norm(
            features,
            (features.shape[-1],),
            w[f"{p}.layer_norm.weight"],
            w[f"{p}.layer_norm.bias"],
            c.layer_norm_eps,
        )
        hidden = F.linear(normed, w[f"{p}.projection.weight"], w[f"{p}.projection.bias"])
        del normed, features
        hidden = self.encoder(hidden, mask)
        return F.linear(hidden, w["lm_head.weight"], w["lm_head.bias"])

    def _frame_mask(self, lengths: list[int], frames: int) -> Any:
        """``_get_feature_vector_attention_mask``: True on each item's first frames (its
        output length; transformers' index arithmetic, negative lengths included)."""
        import torch

        valid = []
        for n in lengths:
            last = self.config.output_lengths(int(n)) - 1
            if last < 0:
                last += frames
            valid.append(last + 1)
        return torch.arange(frames)[None, :] < torch.tensor(valid)[:, None]

    def features(self, input_values: Any) -> Any:
        """The convolutional feature encoder: ``(B, samples)`` → ``(B, channels, frames)``."""
        import torch.nn.functional as F

        c, w = self.config, self._w
        act = _activation(c.feat_extract_activation, inplace=True)  # on fresh outputs only
        hidden = input_values[:, None]
        for i in range(len(c.conv_dim)):
            p = f"wav2vec2.feature_extractor.conv_layers.{i}"
            weight, bias = w[f"{p}.conv.weight"], w.get(f"{p}.conv.bias")
            hidden = F.conv1d(hidden, weight, bias, c.conv_stride[i])
            if i == 0 and c.feat_extract_norm == "group":  # one group per channel
                hidden = F.group_norm(
                    hidden,
                    hidden.shape[1],
                    w[f"{p}.layer_norm.weight"],
                    w[f"{p}.layer_norm.bias"],
                    1e-5,
                )
            elif c.feat_extract_norm == "layer":
                hidden = hidden.transpose(-2, -1)
                hidden = F.layer_norm(
                    hidden,
                    (hidden.shape[-1],),
                    w[f"{p}.layer_norm.weight"],
                    w[f"{p}.layer_norm.bias"],
                    1e-5,
                )
                hidden = hidden.transpose(-2, -1)
            hidden = act(hidden)
        return hidden

    def encoder(self, hidden: Any, mask: Any) -> Any:
        """``Wav2Vec2Encoder`` (post-norm) or ``Wav2Vec2EncoderStableLayerNorm`` (pre-norm)."""
        import torch.nn.functional as F

        c, w = self.config, self._w
        attn_mask = None
        if mask is not None:
            expanded = mask.unsqueeze(-1).repeat(1, 1, hidden.shape[2])
            hidden[~expanded] = 0
            del expanded
            if not bool(mask.all()):
                batch, frames = mask.shape
                attn_mask = mask[:, None, None, :].expand(batch, 1, frames, frames)
        act = _activation(c.feat_extract_activation)
        k = c.num_conv_pos_embeddings
        pos = F.conv1d(
            hidden.transpose(1, 2),
            self._pos_weight(),
            w["wav2vec2.encoder.pos_conv_embed.conv.bias"],
            1,
            k // 2,
            1,
            c.num_conv_pos_embedding_groups,
        )
        if k % 2 == 0:
            pos = pos[:, :, :-1]
        pos = act(pos).transpose(1, 2)
        hidden = hidden + pos
        del pos
        norm = ("wav2vec2.encoder.layer_norm.weight", "wav2vec2.encoder.layer_norm.bias")
        if not c.do_stable_layer_norm:
            hidden = self._norm(hidden, *norm)
        for i in range(c.num_hidden_layers):
            hidden = self._layer(hidden, attn_mask, f"wav2vec2.encoder.layers.{i}")
        if c.do_stable_layer_norm:
            hidden = self._norm(hidden, *norm)
        return hidden

    def _norm(self, x: Any, weight: str, bias: str) -> Any:
        import torch.nn.functional as F

        return F.layer_norm(
            x, (x.shape[-1],), self._w[weight], self._w[bias], self.config.layer_norm_eps
        )

    def _layer(self, hidden: Any, attn_mask: Any, p: str) -> Any:
        """One encoder layer (``Wav2Vec2EncoderLayer`` or its stable-layer-norm variant)."""
        if self.config.do_stable_layer_norm:
            residual = hidden
            hidden = self._attention(
                self._norm(hidden, f"{p}.layer_norm.weight", f"{p}.layer_norm.bias"),
                attn_mask,
                p,
            )
            hidden = residual + hidden
            normed = self._norm(
                hidden, f"{p}.final_layer_norm.weight", f"{p}.final_layer_norm.bias"
            )
            return hidden + self._feed_forward(normed, p)
        residual = hidden
        hidden = residual + self._attention(hidden, attn_mask, p)
        del residual
        hidden = self._norm(hidden, f"{p}.layer_norm.weight", f"{p}.layer_norm.bias")
        hidden = hidden + self._feed_forward(hidden, p)
        return self._norm(hidden, f"{p}.final_layer_norm.weight", f"{p}.final_layer_norm.bias")

    def _attention(self, hidden: Any, attn_mask: Any, p: str) -> Any:
        import torch.nn.functional as F

        w, c = self._w, self.config
        head_dim = c.hidden_size // c.num_attention_heads
        shape = (*hidden.shape[:-1], -1, head_dim)
        a = f"{p}.attention"

        def project(name: str) -> Any:
            return F.linear(hidden, w[f"{a}.{name}.weight"], w[f"{a}.{name}.bias"])

        query = project("q_proj").view(shape).transpose(1, 2)
        key = project("k_proj").view(shape).transpose(1, 2)
        value = project("v_proj").view(shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attn_mask,
            dropout_p=0.0,
            scale=head_dim**-0.5,
            is_causal=False,
        )
        del query, key, value
        out = out.reshape(out.shape[0], -1, out.shape[2], head_dim)
        out = out.transpose(1, 2).contiguous()
        out = out.reshape(*hidden.shape[:-1], -1).contiguous()
        return F.linear(out, w[f"{a}.out_proj.weight"], w[f"{a}.out_proj.bias"])

    def _feed_forward(self, hidden: Any, p: str) -> Any:
        import torch.nn.functional as F

        w = self._w
        f = f"{p}.feed_forward"
        x = F.linear(hidden, w[f"{f}.intermediate_dense.weight"], w[f"{f}.intermediate_dense.bias"])
        x = _activation(self.config.hidden_act)(x)
        return F.linear(x, w[f"{f}.output_dense.weight"], w[f"{f}.output_dense.bias"])


def run_itemwise(encoder: Any, input_values: Any, lengths: list[int], frames: int) -> Any:
    """Exact batching's feature encoder (also ``inference/exact.py``'s): each item's first
    ``lengths[i]`` samples through ``encoder`` alone, unpadded, the outputs padded back to
    ``frames`` with zeros and stacked."""
    import torch
    import torch.nn.functional as F

    width = input_values.shape[-1]
    outputs = []
    for i, n in enumerate(lengths):
        out = encoder(input_values[i : i + 1, : max(1, min(n, width))])
        if out.shape[-1] < frames:
            out = F.pad(out, (0, frames - out.shape[-1]))
        outputs.append(out)
    return torch.cat(outputs, dim=0)


def _activation(name: str, inplace: bool = False) -> Any:
    """The activation; ``inplace``: its in-place form (the same kernel on the same
    layout, so the same bits). In the feature encoder that spares one fresh allocation per
    layer (0.13 GB after the first convolution of a 20 s chunk), whose pages the system
    would zero on first touch: a fifth fewer page faults per chunk (245k to 192k)."""
    import torch
    import torch.nn.functional as F

    if inplace:
        return {"gelu": torch._C._nn.gelu_, "relu": torch.relu_}[name]
    return {"gelu": F.gelu, "relu": F.relu}[name]
