"""Generator and critic architectures: MLP (:mod:`.mlp`), DCGAN (:mod:`.dcgan`), the progressive
networks (:mod:`.progressive`) and their layers (:mod:`.layers`), the stride-2 convolution
rewrites (:mod:`.strided`), and :func:`.cpu.for_cpu`, which puts any NNX model's convolutions in
the form XLA:CPU runs fastest."""

#: Critic normalisations: BatchNorm only without a gradient penalty (DCGAN), LayerNorm (MLP, DCGAN).
CRITIC_NORMS: tuple[str, ...] = ("none", "batch", "layer")
#: The ones each model family's critic takes (the progressive critic has none).
CRITIC_NORMS_BY_MODEL: dict[str, tuple[str, ...]] = {
    "mlp": ("none", "layer"),
    "dcgan": CRITIC_NORMS,
    "progressive": ("none",),
}
