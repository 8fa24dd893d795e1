# detectron2 RoI-feature extraction (msp extract ...). Uses the GPU when one is visible.
ARG BASE_IMAGE=msp:latest
FROM ${BASE_IMAGE}
ENV MSP_SERVICE=extract
ENTRYPOINT ["msp", "extract"]
CMD ["--help"]
