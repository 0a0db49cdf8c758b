"""Generator and critic architectures: MLP (:mod:`.mlp`), DCGAN (:mod:`.dcgan`), the progressive
networks (:mod:`.progressive`) and their layers (:mod:`.layers`), the stride-2 convolution
rewrites (:mod:`.strided`), and :func:`.cpu.for_cpu`, which puts any NNX model's convolutions in
the form XLA:CPU runs fastest."""

#: Critic normalisations: BatchNorm only without a gradient penalty (DCGAN), LayerNorm (MLP, DCGAN).
CRITIC_NORMS: tuple[str, ...] = ("none", "batch", "layer")
