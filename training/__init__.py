"""GRPO training (TRL GRPOTrainer on DeepSpeed), its launcher and evaluation. Reads shard manifests only, never the
catalog."""
