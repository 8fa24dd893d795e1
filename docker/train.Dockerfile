# Multi-stage pre-training (msp train ...). Request a GPU from the runtime (see compose file).
ARG BASE_IMAGE=msp:latest
FROM ${BASE_IMAGE}
ENV MSP_SERVICE=train
ENTRYPOINT ["msp", "train"]
CMD ["--help"]
