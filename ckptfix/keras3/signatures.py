"""Constructor keywords of Keras 3's layers and objects (generated: do not edit).

Made by ``python fixtures/make_keras3_signatures.py`` from Keras 3.15.1:
each public ``keras.layers`` class's ``__init__`` parameters, those of the base classes
it forwards ``**kwargs`` to, and the legacy keywords its ``__init__`` pops from kwargs;
the same for initializers, regularizers and constraints (their own ``__init__`` only).
"""

from __future__ import annotations

KERAS_VERSION = "3.15.1"

_LAYERS = {
    "Activation": (
        "activation activity_regularizer autocast dtype input_dim input_shape name trainable"
    ),
    "ActivityRegularization": (
        "activity_regularizer autocast dtype input_dim input_shape l1 l2 name trainable"
    ),
    "AdaptiveAveragePooling1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name output_size "
        "trainable"
    ),
    "AdaptiveAveragePooling2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name output_size "
        "trainable"
    ),
    "AdaptiveAveragePooling3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name output_size "
        "trainable"
    ),
    "AdaptiveMaxPooling1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name output_size "
        "trainable"
    ),
    "AdaptiveMaxPooling2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name output_size "
        "trainable"
    ),
    "AdaptiveMaxPooling3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name output_size "
        "trainable"
    ),
    "Add": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "AdditiveAttention": (
        "activity_regularizer autocast dropout dtype input_dim input_shape name score_mode seed "
        "trainable use_scale"
    ),
    "AlphaDropout": (
        "activity_regularizer autocast dtype input_dim input_shape name noise_shape rate seed "
        "trainable"
    ),
    "Attention": (
        "activity_regularizer autocast dropout dtype input_dim input_shape name score_mode seed "
        "trainable use_scale"
    ),
    "AugMix": (
        "activity_regularizer all_ops alpha autocast bounding_box_format chain_depth data_format "
        "dtype factor input_dim input_shape interpolation name num_chains seed trainable "
        "value_range"
    ),
    "AutoContrast": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name trainable value_range"
    ),
    "Average": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "AveragePooling1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "AveragePooling2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "AveragePooling3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "AvgPool1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "AvgPool2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "AvgPool3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "BatchNormalization": (
        "activity_regularizer autocast axis beta_constraint beta_initializer beta_regularizer "
        "center dtype epsilon gamma_constraint gamma_initializer gamma_regularizer input_dim "
        "input_shape momentum moving_mean_initializer moving_variance_initializer name renorm "
        "renorm_clipping renorm_momentum scale synchronized trainable"
    ),
    "Bidirectional": (
        "activity_regularizer autocast backward_layer dtype input_dim input_shape layer "
        "merge_mode name trainable weights"
    ),
    "CategoryEncoding": (
        "activity_regularizer autocast dtype input_dim input_shape name num_tokens output_mode "
        "sparse trainable"
    ),
    "CenterCrop": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor height "
        "input_dim input_shape name trainable width"
    ),
    "Concatenate": "activity_regularizer autocast axis dtype input_dim input_shape name trainable",
    "ContrastLimitedAdaptiveHistogramEqualization": (
        "activity_regularizer autocast bounding_box_format clip_limit data_format dtype factor "
        "input_dim input_shape name tile_grid_size trainable value_range"
    ),
    "Conv1D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters groups input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size lora_alpha lora_rank "
        "name padding rank strides trainable use_bias"
    ),
    "Conv1DTranspose": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size name output_padding "
        "padding rank strides trainable use_bias"
    ),
    "Conv2D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters groups input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size lora_alpha lora_rank "
        "name padding rank strides trainable use_bias"
    ),
    "Conv2DTranspose": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size name output_padding "
        "padding rank strides trainable use_bias"
    ),
    "Conv3D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters groups input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size lora_alpha lora_rank "
        "name padding rank strides trainable use_bias"
    ),
    "Conv3DTranspose": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size name output_padding "
        "padding rank strides trainable use_bias"
    ),
    "ConvLSTM1D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer cell data_format dilation_rate dropout dtype filters go_backwards "
        "input_dim input_shape kernel_constraint kernel_initializer kernel_regularizer "
        "kernel_size name padding rank recurrent_activation recurrent_constraint "
        "recurrent_dropout recurrent_initializer recurrent_regularizer return_sequences "
        "return_state seed stateful strides trainable unit_forget_bias unroll use_bias "
        "zero_output_for_mask"
    ),
    "ConvLSTM2D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer cell data_format dilation_rate dropout dtype filters go_backwards "
        "input_dim input_shape kernel_constraint kernel_initializer kernel_regularizer "
        "kernel_size name padding rank recurrent_activation recurrent_constraint "
        "recurrent_dropout recurrent_initializer recurrent_regularizer return_sequences "
        "return_state seed stateful strides trainable unit_forget_bias unroll use_bias "
        "zero_output_for_mask"
    ),
    "ConvLSTM3D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer cell data_format dilation_rate dropout dtype filters go_backwards "
        "input_dim input_shape kernel_constraint kernel_initializer kernel_regularizer "
        "kernel_size name padding rank recurrent_activation recurrent_constraint "
        "recurrent_dropout recurrent_initializer recurrent_regularizer return_sequences "
        "return_state seed stateful strides trainable unit_forget_bias unroll use_bias "
        "zero_output_for_mask"
    ),
    "Convolution1D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters groups input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size lora_alpha lora_rank "
        "name padding rank strides trainable use_bias"
    ),
    "Convolution1DTranspose": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size name output_padding "
        "padding rank strides trainable use_bias"
    ),
    "Convolution2D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters groups input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size lora_alpha lora_rank "
        "name padding rank strides trainable use_bias"
    ),
    "Convolution2DTranspose": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size name output_padding "
        "padding rank strides trainable use_bias"
    ),
    "Convolution3D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters groups input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size lora_alpha lora_rank "
        "name padding rank strides trainable use_bias"
    ),
    "Convolution3DTranspose": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format dilation_rate dtype filters input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer kernel_size name output_padding "
        "padding rank strides trainable use_bias"
    ),
    "Cropping1D": (
        "activity_regularizer autocast cropping dtype input_dim input_shape name trainable"
    ),
    "Cropping2D": (
        "activity_regularizer autocast cropping data_format dtype input_dim input_shape name "
        "trainable"
    ),
    "Cropping3D": (
        "activity_regularizer autocast cropping data_format dtype input_dim input_shape name "
        "trainable"
    ),
    "CutMix": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable"
    ),
    "Dense": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer dtype input_dim input_shape kernel_constraint kernel_initializer "
        "kernel_regularizer lora_alpha lora_rank name quantization_config trainable units "
        "use_bias"
    ),
    "DepthwiseConv1D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format depth_multiplier depthwise_constraint depthwise_initializer "
        "depthwise_regularizer dilation_rate dtype input_dim input_shape kernel_size name padding "
        "rank strides trainable use_bias"
    ),
    "DepthwiseConv2D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format depth_multiplier depthwise_constraint depthwise_initializer "
        "depthwise_regularizer dilation_rate dtype input_dim input_shape kernel_size name padding "
        "rank strides trainable use_bias"
    ),
    "Discretization": "bin_boundaries dtype epsilon name num_bins output_mode sparse",
    "Dot": (
        "activity_regularizer autocast axes dtype input_dim input_shape name normalize trainable"
    ),
    "Dropout": (
        "activity_regularizer autocast dtype input_dim input_shape name noise_shape rate seed "
        "trainable"
    ),
    "ELU": "activity_regularizer alpha autocast dtype input_dim input_shape name trainable",
    "EinsumDense": (
        "activation activity_regularizer autocast bias_axes bias_constraint bias_initializer "
        "bias_regularizer dtype equation gptq_unpacked_column_size input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer lora_alpha lora_rank name "
        "output_shape quantization_config trainable"
    ),
    "Embedding": (
        "activity_regularizer autocast dtype embeddings_constraint embeddings_initializer "
        "embeddings_regularizer input_dim input_length input_shape lora_alpha lora_rank mask_zero "
        "name output_dim quantization_config trainable weights"
    ),
    "Equalization": (
        "activity_regularizer autocast bins bounding_box_format data_format dtype factor "
        "input_dim input_shape name trainable value_range"
    ),
    "Flatten": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name trainable"
    ),
    "FlaxLayer": (
        "activity_regularizer autocast call_fn dtype init_fn input_dim input_shape method module "
        "name native_serialization_platforms params seed state trainable variables"
    ),
    "GRU": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer cell dropout dtype go_backwards implementation input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer name recurrent_activation "
        "recurrent_constraint recurrent_dropout recurrent_initializer recurrent_regularizer "
        "reset_after return_sequences return_state seed stateful trainable units unroll use_bias "
        "use_cudnn zero_output_for_mask"
    ),
    "GRUCell": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer dropout dtype implementation input_dim input_shape kernel_constraint "
        "kernel_initializer kernel_regularizer name recurrent_activation recurrent_constraint "
        "recurrent_dropout recurrent_initializer recurrent_regularizer reset_after seed trainable "
        "units use_bias"
    ),
    "GaussianDropout": (
        "activity_regularizer autocast dtype input_dim input_shape name rate seed trainable"
    ),
    "GaussianNoise": (
        "activity_regularizer autocast dtype input_dim input_shape name seed stddev trainable"
    ),
    "GlobalAveragePooling1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalAveragePooling2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalAveragePooling3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalAvgPool1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalAvgPool2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalAvgPool3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalMaxPool1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalMaxPool2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalMaxPool3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalMaxPooling1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalMaxPooling2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GlobalMaxPooling3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape keepdims name "
        "pool_dimensions trainable"
    ),
    "GroupNormalization": (
        "activity_regularizer autocast axis beta_constraint beta_initializer beta_regularizer "
        "center dtype epsilon gamma_constraint gamma_initializer gamma_regularizer groups "
        "input_dim input_shape name scale trainable"
    ),
    "GroupQueryAttention": (
        "activity_regularizer autocast bias_constraint bias_initializer bias_regularizer dropout "
        "dtype flash_attention head_dim input_dim input_shape kernel_constraint "
        "kernel_initializer kernel_regularizer name num_key_value_heads num_query_heads seed "
        "sliding_window trainable use_bias use_gate"
    ),
    "HashedCrossing": (
        "activity_regularizer autocast dtype input_dim input_shape name num_bins output_mode "
        "sparse trainable"
    ),
    "Hashing": (
        "activity_regularizer autocast dtype input_dim input_shape mask_value name num_bins "
        "output_mode salt sparse trainable"
    ),
    "Identity": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "InputLayer": (
        "activity_regularizer autocast batch_input_shape batch_shape batch_size dtype input_dim "
        "input_shape input_tensor name optional ragged shape sparse trainable"
    ),
    "IntegerLookup": (
        "activity_regularizer autocast dtype has_input_vocabulary idf_weights input_dim "
        "input_shape invert mask_token max_tokens name num_oov_indices oov_method oov_token "
        "output_mode pad_to_max_tokens salt sparse trainable vocabulary vocabulary_dtype "
        "vocabulary_size"
    ),
    "JaxLayer": (
        "activity_regularizer autocast call_fn dtype init_fn input_dim input_shape name "
        "native_serialization_platforms params seed state trainable"
    ),
    "LSTM": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer cell dropout dtype go_backwards implementation input_dim input_shape "
        "kernel_constraint kernel_initializer kernel_regularizer name recurrent_activation "
        "recurrent_constraint recurrent_dropout recurrent_initializer recurrent_regularizer "
        "return_sequences return_state seed stateful trainable unit_forget_bias units unroll "
        "use_bias use_cudnn zero_output_for_mask"
    ),
    "LSTMCell": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer dropout dtype implementation input_dim input_shape kernel_constraint "
        "kernel_initializer kernel_regularizer name recurrent_activation recurrent_constraint "
        "recurrent_dropout recurrent_initializer recurrent_regularizer seed trainable "
        "unit_forget_bias units use_bias"
    ),
    "Lambda": (
        "activity_regularizer arguments autocast dtype function input_dim input_shape mask name "
        "output_shape trainable"
    ),
    "Layer": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "LayerNormalization": (
        "activity_regularizer autocast axis beta_constraint beta_initializer beta_regularizer "
        "center dtype epsilon gamma_constraint gamma_initializer gamma_regularizer input_dim "
        "input_shape name rms_scaling scale trainable"
    ),
    "LeakyReLU": (
        "activity_regularizer alpha autocast dtype input_dim input_shape name negative_slope "
        "trainable"
    ),
    "Masking": (
        "activity_regularizer autocast dtype input_dim input_shape mask_value name trainable"
    ),
    "MaxNumBoundingBoxes": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_value "
        "input_dim input_shape max_number name trainable"
    ),
    "MaxPool1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "MaxPool2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "MaxPool3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "MaxPooling1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "MaxPooling2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "MaxPooling3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "pool_dimensions pool_mode pool_size strides trainable"
    ),
    "Maximum": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "MelSpectrogram": (
        "activity_regularizer autocast dtype fft_length input_dim input_shape mag_exp max_freq "
        "min_freq min_power name num_mel_bins power_to_db ref_power sampling_rate sequence_length "
        "sequence_stride top_db trainable window"
    ),
    "Minimum": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "MixUp": (
        "activity_regularizer alpha autocast bounding_box_format data_format dtype factor "
        "input_dim input_shape name seed trainable"
    ),
    "MultiHeadAttention": (
        "activity_regularizer attention_axes autocast bias_constraint bias_initializer "
        "bias_regularizer dropout dtype flash_attention input_dim input_shape kernel_constraint "
        "kernel_initializer kernel_regularizer key_dim name num_heads output_shape seed "
        "sliding_window trainable use_bias use_gate value_dim"
    ),
    "Multiply": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "Normalization": (
        "activity_regularizer autocast axis dtype input_dim input_shape invert mean name "
        "trainable variance"
    ),
    "PReLU": (
        "activity_regularizer alpha_constraint alpha_initializer alpha_regularizer autocast dtype "
        "input_dim input_shape name shared_axes trainable"
    ),
    "Permute": "activity_regularizer autocast dims dtype input_dim input_shape name trainable",
    "Pipeline": "layers name",
    "RMSNormalization": (
        "activity_regularizer autocast axis dtype epsilon input_dim input_shape name trainable"
    ),
    "RNN": (
        "activity_regularizer autocast cell dtype go_backwards input_dim input_shape name "
        "return_sequences return_state stateful trainable unroll zero_output_for_mask"
    ),
    "RandAugment": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape interpolation name num_ops seed trainable value_range"
    ),
    "RandomBrightness": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomColorDegeneration": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomColorJitter": (
        "activity_regularizer autocast bounding_box_format brightness_factor contrast_factor "
        "data_format dtype factor hue_factor input_dim input_shape name saturation_factor seed "
        "trainable value_range"
    ),
    "RandomContrast": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomCrop": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor height "
        "input_dim input_shape name seed trainable width"
    ),
    "RandomElasticTransform": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_mode "
        "fill_value input_dim input_shape interpolation name scale seed trainable value_range"
    ),
    "RandomErasing": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_value "
        "input_dim input_shape name scale seed trainable value_range"
    ),
    "RandomFlip": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape mode name seed trainable"
    ),
    "RandomGaussianBlur": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape kernel_size name seed sigma trainable value_range"
    ),
    "RandomGrayscale": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable"
    ),
    "RandomHue": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomInvert": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomPerspective": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_value "
        "input_dim input_shape interpolation name scale seed trainable"
    ),
    "RandomPosterization": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomRotation": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_mode "
        "fill_value input_dim input_shape interpolation name seed trainable"
    ),
    "RandomSaturation": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomSharpness": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor input_dim "
        "input_shape name seed trainable value_range"
    ),
    "RandomShear": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_mode "
        "fill_value input_dim input_shape interpolation name seed trainable x_factor y_factor"
    ),
    "RandomTranslation": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_mode "
        "fill_value height_factor input_dim input_shape interpolation name seed trainable "
        "width_factor"
    ),
    "RandomZoom": (
        "activity_regularizer autocast bounding_box_format data_format dtype factor fill_mode "
        "fill_value height_factor input_dim input_shape interpolation name seed trainable "
        "width_factor"
    ),
    "ReLU": (
        "activity_regularizer autocast dtype input_dim input_shape max_value name negative_slope "
        "threshold trainable"
    ),
    "RepeatVector": "activity_regularizer autocast dtype input_dim input_shape n name trainable",
    "Rescaling": (
        "activity_regularizer autocast dtype input_dim input_shape name offset scale trainable"
    ),
    "Reshape": (
        "activity_regularizer autocast dtype input_dim input_shape name target_shape trainable"
    ),
    "Resizing": (
        "activity_regularizer antialias autocast bounding_box_format crop_to_aspect_ratio "
        "data_format dtype factor fill_mode fill_value height input_dim input_shape interpolation "
        "name pad_to_aspect_ratio trainable width"
    ),
    "ReversibleEmbedding": (
        "activity_regularizer autocast dtype embeddings_constraint embeddings_initializer "
        "embeddings_regularizer input_dim input_length input_shape logit_soft_cap lora_alpha "
        "lora_rank mask_zero name output_dim quantization_config reverse_dtype tie_weights "
        "trainable weights"
    ),
    "STFTSpectrogram": (
        "activity_regularizer autocast data_format dtype expand_dims fft_length frame_length "
        "frame_step input_dim input_shape mode name padding periodic scaling trainable window"
    ),
    "SeparableConv1D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format depth_multiplier depthwise_constraint depthwise_initializer "
        "depthwise_regularizer dilation_rate dtype filters input_dim input_shape kernel_size name "
        "padding pointwise_constraint pointwise_initializer pointwise_regularizer rank strides "
        "trainable use_bias"
    ),
    "SeparableConv2D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format depth_multiplier depthwise_constraint depthwise_initializer "
        "depthwise_regularizer dilation_rate dtype filters input_dim input_shape kernel_size name "
        "padding pointwise_constraint pointwise_initializer pointwise_regularizer rank strides "
        "trainable use_bias"
    ),
    "SeparableConvolution1D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format depth_multiplier depthwise_constraint depthwise_initializer "
        "depthwise_regularizer dilation_rate dtype filters input_dim input_shape kernel_size name "
        "padding pointwise_constraint pointwise_initializer pointwise_regularizer rank strides "
        "trainable use_bias"
    ),
    "SeparableConvolution2D": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer data_format depth_multiplier depthwise_constraint depthwise_initializer "
        "depthwise_regularizer dilation_rate dtype filters input_dim input_shape kernel_size name "
        "padding pointwise_constraint pointwise_initializer pointwise_regularizer rank strides "
        "trainable use_bias"
    ),
    "SimpleRNN": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer cell dropout dtype go_backwards input_dim input_shape kernel_constraint "
        "kernel_initializer kernel_regularizer name recurrent_constraint recurrent_dropout "
        "recurrent_initializer recurrent_regularizer return_sequences return_state seed stateful "
        "trainable units unroll use_bias zero_output_for_mask"
    ),
    "SimpleRNNCell": (
        "activation activity_regularizer autocast bias_constraint bias_initializer "
        "bias_regularizer dropout dtype input_dim input_shape kernel_constraint "
        "kernel_initializer kernel_regularizer name recurrent_constraint recurrent_dropout "
        "recurrent_initializer recurrent_regularizer seed trainable units use_bias"
    ),
    "Softmax": "activity_regularizer autocast axis dtype input_dim input_shape name trainable",
    "Solarization": (
        "activity_regularizer addition_factor autocast bounding_box_format data_format dtype "
        "factor input_dim input_shape name seed threshold_factor trainable value_range"
    ),
    "SpatialDropout1D": "dtype name rate seed",
    "SpatialDropout2D": "data_format dtype name rate seed",
    "SpatialDropout3D": "data_format dtype name rate seed",
    "SpectralNormalization": (
        "activity_regularizer autocast dtype input_dim input_shape layer name power_iterations "
        "trainable"
    ),
    "StackedRNNCells": (
        "activity_regularizer autocast cells dtype input_dim input_shape name trainable"
    ),
    "StringLookup": (
        "activity_regularizer autocast dtype encoding has_input_vocabulary idf_weights input_dim "
        "input_shape invert mask_token max_tokens name num_oov_indices oov_method oov_token "
        "output_mode pad_to_max_tokens salt sparse trainable vocabulary vocabulary_dtype "
        "vocabulary_size"
    ),
    "Subtract": "activity_regularizer autocast dtype input_dim input_shape name trainable",
    "TFSMLayer": "call_endpoint call_training_endpoint dtype filepath name trainable",
    "TextVectorization": (
        "activity_regularizer autocast dtype encoding has_input_vocabulary idf_weights input_dim "
        "input_shape max_tokens name ngrams output_mode output_sequence_length pad_to_max_tokens "
        "ragged sparse split standardize trainable vocabulary vocabulary_size"
    ),
    "TimeDistributed": (
        "activity_regularizer autocast dtype input_dim input_shape layer name trainable"
    ),
    "TorchModuleWrapper": (
        "activity_regularizer autocast dtype input_dim input_shape module name output_shape "
        "trainable"
    ),
    "UnitNormalization": (
        "activity_regularizer autocast axis dtype input_dim input_shape name trainable"
    ),
    "UpSampling1D": "activity_regularizer autocast dtype input_dim input_shape name size trainable",
    "UpSampling2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape interpolation name "
        "size trainable"
    ),
    "UpSampling3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name size trainable"
    ),
    "Wrapper": "activity_regularizer autocast dtype input_dim input_shape layer name trainable",
    "ZeroPadding1D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "trainable"
    ),
    "ZeroPadding2D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "trainable"
    ),
    "ZeroPadding3D": (
        "activity_regularizer autocast data_format dtype input_dim input_shape name padding "
        "trainable"
    ),
}

#: {layer class name: the keywords its constructor accepts}
LAYER_ARGS: dict[str, frozenset[str]] = {k: frozenset(v.split()) for k, v in _LAYERS.items()}

_INITIALIZERS = {
    "Constant": "value",
    "GlorotNormal": "input_axes output_axes seed",
    "GlorotUniform": "input_axes output_axes seed",
    "HeNormal": "input_axes output_axes seed",
    "HeUniform": "input_axes output_axes seed",
    "Identity": "gain",
    "IdentityInitializer": "gain",
    "LecunNormal": "input_axes output_axes seed",
    "LecunUniform": "input_axes output_axes seed",
    "Ones": "",
    "Orthogonal": "gain seed",
    "OrthogonalInitializer": "gain seed",
    "RandomNormal": "mean seed stddev",
    "RandomUniform": "maxval minval seed",
    "STFT": "periodic scaling side window",
    "STFTInitializer": "periodic scaling side window",
    "TruncatedNormal": "mean seed stddev",
    "VarianceScaling": "distribution input_axes mode output_axes scale seed",
    "Zeros": "",
    "constant": "value",
    "glorot_normal": "input_axes output_axes seed",
    "glorot_uniform": "input_axes output_axes seed",
    "he_normal": "input_axes output_axes seed",
    "he_uniform": "input_axes output_axes seed",
    "identity": "gain",
    "lecun_normal": "input_axes output_axes seed",
    "lecun_uniform": "input_axes output_axes seed",
    "ones": "",
    "orthogonal": "gain seed",
    "random_normal": "mean seed stddev",
    "random_uniform": "maxval minval seed",
    "stft": "periodic scaling side window",
    "truncated_normal": "mean seed stddev",
    "variance_scaling": "distribution input_axes mode output_axes scale seed",
    "zeros": "",
}

#: {initializer class name: the keywords its constructor accepts}
INITIALIZER_ARGS: dict[str, frozenset[str]] = {
    k: frozenset(v.split()) for k, v in _INITIALIZERS.items()
}

_REGULARIZERS = {
    "L1": "l1",
    "L1L2": "l1 l2",
    "L2": "l2",
    "OrthogonalRegularizer": "factor mode",
    "l1": "l1",
    "l1_l2": "l1 l2",
    "l2": "l2",
    "orthogonal_regularizer": "factor mode",
}

#: {regularizer class name: the keywords its constructor accepts}
REGULARIZER_ARGS: dict[str, frozenset[str]] = {
    k: frozenset(v.split()) for k, v in _REGULARIZERS.items()
}

_CONSTRAINTS = {
    "MaxNorm": "axis max_value",
    "MinMaxNorm": "axis max_value min_value rate",
    "NonNeg": "",
    "UnitNorm": "axis",
    "max_norm": "axis max_value",
    "min_max_norm": "axis max_value min_value rate",
    "non_neg": "",
    "unit_norm": "axis",
}

#: {constraint class name: the keywords its constructor accepts}
CONSTRAINT_ARGS: dict[str, frozenset[str]] = {
    k: frozenset(v.split()) for k, v in _CONSTRAINTS.items()
}
