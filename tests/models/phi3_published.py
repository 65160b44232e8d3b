"""Published Hugging Face ``config.json`` files of the Phi-3 presets, as data for the tests.

Each was checked against public copies found with code search: Phi-3-mini-4k-instruct's
(transformers 4.40.2) verbatim; Phi-4-mini-instruct's verbatim (transformers 4.45.0, with its
remote-code keys); Phi-3-mini-128k-instruct's LongRoPE tables from a Microsoft long-context
evaluation script and llama.cpp's notes quoting the config (its other keys are the 4k file's
with the 128K lengths).
"""

from __future__ import annotations

from typing import Any

# microsoft/Phi-3-mini-4k-instruct.
PHI3_MINI_4K_JSON: dict[str, Any] = {
    "architectures": ["Phi3ForCausalLM"],
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_phi3.Phi3Config",
        "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM",
    },
    "bos_token_id": 1,
    "embd_pdrop": 0.0,
    "eos_token_id": 32000,
    "hidden_act": "silu",
    "hidden_size": 3072,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 4096,
    "model_type": "phi3",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "original_max_position_embeddings": 4096,
    "pad_token_id": 32000,
    "resid_pdrop": 0.0,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "sliding_window": 2047,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.40.2",
    "use_cache": True,
    "attention_bias": False,
    "vocab_size": 32064,
}

# microsoft/Phi-3-mini-128k-instruct (main, since the June 2024 update).
PHI3_MINI_128K_JSON: dict[str, Any] = {
    **PHI3_MINI_4K_JSON,
    "max_position_embeddings": 131072,
    "sliding_window": 262144,
    "rope_scaling": {
        "long_factor": [
            1.0700000524520874, 1.1200000047683716, 1.149999976158142, 1.4199999570846558,
            1.5699999332427979, 1.7999999523162842, 2.129999876022339, 2.129999876022339,
            3.009999990463257, 5.910000324249268, 6.950000286102295, 9.070000648498535,
            9.930000305175781, 10.710000038146973, 11.130000114440918, 14.609999656677246,
            15.409998893737793, 19.809999465942383, 37.279998779296875, 38.279998779296875,
            38.599998474121094, 40.12000274658203, 46.20000457763672, 50.940006256103516,
            53.66000747680664, 54.9373893737793, 56.89738845825195, 57.28738784790039,
            59.98738479614258, 60.86738586425781, 60.887386322021484, 61.71739196777344,
            62.91739273071289, 62.957393646240234, 63.41739273071289, 63.8173942565918,
            63.83739471435547, 63.897396087646484, 63.93739700317383, 64.06739807128906,
            64.11434936523438, 64.12435150146484, 64.15435028076172, 64.19435119628906,
            64.24435424804688, 64.57435607910156, 64.69000244140625, 64.76000213623047,
        ],
        "short_factor": [
            1.1, 1.1, 1.1, 1.3000000000000003, 1.3500000000000003, 1.3500000000000003,
            1.4000000000000004, 1.5500000000000005, 2.000000000000001, 2.000000000000001,
            2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
            2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
            2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
            2.000000000000001, 2.000000000000001, 2.000000000000001, 2.0500000000000007,
            2.0500000000000007, 2.0500000000000007, 2.0500000000000007, 2.0500000000000007,
            2.0500000000000007, 2.1000000000000005, 2.1000000000000005, 2.1500000000000004,
            2.25, 2.25, 2.25, 2.25, 2.25, 2.3999999999999995, 2.4499999999999993,
            2.499999999999999, 2.6999999999999984, 2.6999999999999984, 2.7499999999999982,
            2.799999999999998, 2.8999999999999977, 3.049999999999997,
        ],
        "type": "longrope",
    },
}  # fmt: skip

# microsoft/Phi-4-mini-instruct.
PHI4_MINI_JSON: dict[str, Any] = {
    "_name_or_path": "Phi-4-mini-instruct",
    "architectures": ["Phi3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_phi3.Phi3Config",
        "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM",
        "AutoTokenizer": "Xenova/gpt-4o",
    },
    "bos_token_id": 199999,
    "embd_pdrop": 0.0,
    "eos_token_id": 199999,
    "full_attn_mod": 1,
    "hidden_act": "silu",
    "hidden_size": 3072,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "interpolate_factor": 1,
    "lm_head_bias": False,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "phi3",
    "num_attention_heads": 24,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "original_max_position_embeddings": 4096,
    "pad_token_id": 199999,
    "partial_rotary_factor": 0.75,
    "resid_pdrop": 0.0,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "long_factor": [
            1, 1.118320672, 1.250641126, 1.398617824, 1.564103225, 1.74916897, 1.956131817,
            2.187582649, 2.446418898, 2.735880826, 3.059592084, 3.421605075, 3.826451687,
            4.279200023, 4.785517845, 5.351743533, 5.984965424, 6.693110555, 7.485043894,
            8.370679318, 9.36110372, 10.4687158, 11.70738129, 13.09260651, 14.64173252,
            16.37415215, 18.31155283, 20.47818807, 22.90118105, 25.61086418, 28.64115884,
            32.03, 32.1, 32.13, 32.23, 32.6, 32.61, 32.64, 32.66, 32.7, 32.71, 32.93, 32.97,
            33.28, 33.49, 33.5, 44.16, 47.77,
        ],
        "short_factor": [1.0] * 48,
        "type": "longrope",
    },
    "rope_theta": 10000.0,
    "sliding_window": 262144,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0",
    "use_cache": True,
    "vocab_size": 200064,
}  # fmt: skip
