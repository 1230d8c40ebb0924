"""Pure ``nn.Module`` building blocks of pathxai's text-prompted segmentor (and its U-Net baseline)."""

from .fusion import FusionLayer, QueryFusion, sincos_position_2d
from .heads import MLP, PromptHeads
from .image_encoder import GrowthBlock, ImageEncoder, PixelDecoder, ResBlock
from .segmentor_model import STRIDE, ImageState, ModelConfig, PromptSegmentationModel
from .text_encoder import TextEncoder
from .tokenizer import Vocabulary, tokenize_words
from .unet import UNET_SIZES, UNET_STRIDE, UNet

__all__ = [
    "STRIDE", "FusionLayer", "GrowthBlock", "ImageEncoder", "ImageState", "MLP", "ModelConfig",
    "PixelDecoder", "PromptHeads", "PromptSegmentationModel", "QueryFusion", "ResBlock",
    "TextEncoder", "UNET_SIZES", "UNET_STRIDE", "UNet", "Vocabulary", "sincos_position_2d",
    "tokenize_words",
]
