"""The tiny Flux.1-architecture demo models (`demo-flux`, `demo-flux-controlnet`): random weights, built
in code in seconds, tokenizers too (a CLIP BPE and a T5 unigram vocabulary of the demo words). A CLIP
text encoder for the pooled prompt, a small T5 encoder for the token embeddings, an MMDiT of one double
and two single blocks with guidance embedding (dev-like: distilled guidance), a 16-channel VAE, flow
matching with resolution-dependent shift."""

from __future__ import annotations

import tempfile
from pathlib import Path

T5_MAX_TOKENS = 256  # the demo T5's prompt length, as schnell's (dev takes 512): beyond CLIP's 77


def _t5_tokenizer(max_tokens: int = T5_MAX_TOKENS):
    from transformers import T5Tokenizer

    from ..demo import _DEMO_WORDS

    # Unigram pieces: the specials T5 numbers first, whole words, then single characters as the fallback.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + w, -1.0) for w in _DEMO_WORDS] + [("\u2581", -2.0)]
    pieces += [(chr(c), -5.0) for c in range(33, 127)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_tokens)


def _t5_encoder(vocab_size: int, seed: int, width: int = 32):
    import torch
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size, d_model=width, d_kv=8, d_ff=2 * width, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, pad_token_id=0, eos_token_id=1,
    )
    torch.manual_seed(seed)
    return T5EncoderModel(config).eval()


def _transformer(seed: int, in_channels: int = 64, guidance: bool = True):
    import torch
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=in_channels,  # 16 latent channels packed 2x2
        out_channels=64,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,  # the T5's width
        pooled_projection_dim=32,  # the CLIP's width
        guidance_embeds=guidance,
        axes_dims_rope=(2, 2, 4),
    ).eval()


def build_flux_demo(dest: Path, fill: bool = False, kontext: bool = False, schnell: bool = False) -> Path:
    """The demo pipeline folder; `fill`: a FLUX.1 Fill-architecture one (384 input channels, FluxFillPipeline);
    `kontext`: a FLUX.1 Kontext one (dev's architecture, FluxKontextPipeline); `schnell`: schnell's (no
    guidance embedding, a fixed shift of 1)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxKontextPipeline, FluxPipeline

    from ..demo import _save_atomically, _text_encoder, _tokenizer, _vae

    with tempfile.TemporaryDirectory() as tok_dir:
        tokenizer = _tokenizer(Path(tok_dir))
    tokenizer_2 = _t5_tokenizer()
    cls = FluxFillPipeline if fill else FluxKontextPipeline if kontext else FluxPipeline
    pipe = cls(
        transformer=(
            _transformer(seed=27, in_channels=384) if fill
            else _transformer(seed=29, guidance=False) if schnell
            else _transformer(seed=28 if kontext else 21)
        ),
        # Flux.1 dev's schedule: the shift grows with the image's token count (schnell's is fixed)
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0) if schnell else FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        ),
        # Flux.1's latent scale and shift
        vae=_vae(22, 16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, hidden=32, projection=None, seed=23),
        tokenizer=tokenizer,
        text_encoder_2=_t5_encoder(len(tokenizer_2), seed=24),
        tokenizer_2=tokenizer_2,
    )
    _save_atomically(pipe, dest)
    return dest


def build_flux_controlnet_demo(dest: Path, flux_folder: Path, union: bool = False) -> Path:
    """A tiny Flux ControlNet (one double block) derived from the demo's transformer; its zero-initialised
    output projections get random weights, so a control image visibly changes the result. `union`: a
    Union ControlNet (seven control modes, InstantX's layout), the control mode embedding random too."""
    import torch
    from diffusers import FluxControlNetModel, FluxTransformer2DModel

    from ..demo import _save_atomically

    transformer = FluxTransformer2DModel.from_pretrained(flux_folder / "transformer", local_files_only=True)
    torch.manual_seed(25)
    controlnet = FluxControlNetModel.from_transformer(
        transformer, num_layers=1, num_single_layers=0, attention_head_dim=8, num_attention_heads=2
    )
    if union:
        state = controlnet.state_dict()
        torch.manual_seed(27)
        config = {k: v for k, v in controlnet.config.items() if not k.startswith("_")}  # not its defaults list
        controlnet = FluxControlNetModel.from_config({**config, "num_mode": 7})
        controlnet.load_state_dict(state, strict=False)  # all but the new mode embedding
    torch.manual_seed(26)
    for block in controlnet.controlnet_blocks:
        block.reset_parameters()
    controlnet.controlnet_x_embedder.reset_parameters()
    _save_atomically(controlnet.eval(), dest)
    return dest


def build_main(dest: Path, demo_dir: Path) -> Path:
    return build_flux_demo(dest)


def build_schnell(dest: Path, demo_dir: Path) -> Path:
    return build_flux_demo(dest, schnell=True)


def build_fill(dest: Path, demo_dir: Path) -> Path:
    return build_flux_demo(dest, fill=True)


def build_kontext(dest: Path, demo_dir: Path) -> Path:
    return build_flux_demo(dest, kontext=True)


def build_controlnet(dest: Path, demo_dir: Path) -> Path:
    main = demo_dir / "flux"
    if not main.exists():
        build_flux_demo(main)
    return build_flux_controlnet_demo(dest, main)


# the demo Redux's SigLIP vision tower: 32 px pictures in 8 px patches (16 image tokens), 16 wide
REDUX_IMAGE_SIZE, REDUX_WIDTH = 32, 16


def build_redux_demo(dest: Path) -> Path:
    """A tiny FLUX Redux folder (`demo-flux-redux`, random weights): diffusers' FluxPriorReduxPipeline layout
    (image_encoder: a SigLIP vision tower, feature_extractor: its SiglipImageProcessor, image_embedder:
    ReduxImageEncoder into the demo T5's width), no text encoders (the job's own embeddings go in)."""
    import torch
    from diffusers import FluxPriorReduxPipeline
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from transformers import SiglipVisionConfig, SiglipVisionModel

    try:
        from transformers import SiglipImageProcessorPil as Processor  # no torchvision needed
    except ImportError:  # pragma: no cover - older transformers
        from transformers import SiglipImageProcessor as Processor

    from ..demo import _save_atomically

    torch.manual_seed(31)
    encoder = SiglipVisionModel(SiglipVisionConfig(
        hidden_size=REDUX_WIDTH, intermediate_size=2 * REDUX_WIDTH, num_hidden_layers=1, num_attention_heads=2,
        image_size=REDUX_IMAGE_SIZE, patch_size=8,
    )).eval()
    torch.manual_seed(32)
    embedder = ReduxImageEncoder(redux_dim=REDUX_WIDTH, txt_in_features=32).eval()  # 32: the demo T5's d_model
    processor = Processor(size={"height": REDUX_IMAGE_SIZE, "width": REDUX_IMAGE_SIZE})
    pipe = FluxPriorReduxPipeline(image_encoder=encoder, feature_extractor=processor, image_embedder=embedder)
    _save_atomically(pipe, dest)
    return dest


def build_redux(dest: Path, demo_dir: Path) -> Path:
    return build_redux_demo(dest)


def build_ip_adapter_file(dest: Path, flux_folder: Path, seed: int = 33) -> Path:
    """An XLabs-layout FLUX IP-Adapter .safetensors file at `dest` for the Flux pipeline folder `flux_folder`
    (its transformer's double blocks and widths), reading the demo CLIP image encoder's projection
    (invoke_core/ip_adapter_demo.py ENCODER); random weights, the projection diffusers' own ImageProjection
    at its default initialisation (families/flux_ip_adapter.py)."""
    import torch
    from diffusers import FluxTransformer2DModel
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import save_file

    from ..ip_adapter_demo import ENCODER

    config = FluxTransformer2DModel.load_config(Path(flux_folder) / "transformer")
    width, hidden = config["joint_attention_dim"], config["num_attention_heads"] * config["attention_head_dim"]
    torch.manual_seed(seed)
    projection = ImageProjection(cross_attention_dim=width, image_embed_dim=ENCODER["projection_dim"], num_image_text_embeds=4)
    tensors = {f"ip_adapter_proj_model.{k.replace('image_embeds', 'proj')}": v for k, v in projection.state_dict().items()}
    for block in range(config["num_layers"]):
        for name in ("ip_adapter_double_stream_k_proj", "ip_adapter_double_stream_v_proj"):
            linear = torch.nn.Linear(width, hidden)
            for tensor in ("weight", "bias"):
                tensors[f"double_blocks.{block}.processor.{name}.{tensor}"] = getattr(linear, tensor).detach()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
    tmp.replace(dest)
    return dest


def build_ip_adapter(dest: Path, demo_dir: Path) -> Path:
    """The built-in `demo-flux-ip-adapter`: a folder holding a FLUX IP-Adapter for demo-flux (built first when
    missing) that reads the demo image encoder (demo-image-encoder)."""
    from ..atomic import build_folder
    from ..ip_adapter import ADAPTER_FILE

    main = demo_dir / "flux"
    if not main.exists():
        build_flux_demo(main)
    return build_folder(dest, lambda tmp: build_ip_adapter_file(tmp / ADAPTER_FILE, main))
