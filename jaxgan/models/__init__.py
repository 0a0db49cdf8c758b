"""Generator and critic architectures: MLP (:mod:`.mlp`), DCGAN (:mod:`.dcgan`), the progressive
networks (:mod:`.progressive`) and their layers (:mod:`.layers`), and the stride-2 convolution
rewrites (:mod:`.strided`)."""

#: Critic normalisations: BatchNorm only without a gradient penalty (DCGAN), LayerNorm (MLP, DCGAN).
CRITIC_NORMS: tuple[str, ...] = ("none", "batch", "layer")
