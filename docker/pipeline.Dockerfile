# Beam jobs (msp pipeline ...). Runs on the in-process runner by default; pass Beam options
# (--runner=PortableRunner --job_endpoint=...) to submit to Flink, Spark or Dataflow.
ARG BASE_IMAGE=msp:latest
FROM ${BASE_IMAGE}
ENV MSP_SERVICE=pipeline
ENTRYPOINT ["msp", "pipeline"]
CMD ["--help"]
