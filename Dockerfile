# harden in a container:
#   docker build -t harden .
#   docker run --rm -v "$PWD:/src" harden check --recursive .
#   docker run --rm -i harden fix - < compose.yaml > hardened.yaml
# BASE: any image with Python 3.11 or later and its venv module (the default is the
# official slim image). PIP_ARGS: extra pip arguments, e.g. a mirror or
# "--no-index --find-links /src/wheels" for a build without network (wheels/ in the context).
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ARG PIP_ARGS=""
COPY . /src
RUN python3 -m venv /opt/harden \
 && /opt/harden/bin/python -m pip install --no-cache-dir --disable-pip-version-check ${PIP_ARGS} /src \
 && /opt/harden/bin/harden --help > /dev/null

FROM ${BASE}
COPY --from=build /opt/harden /opt/harden
ENV PATH=/opt/harden/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1
# Not root; files in the mounted directory are rewritten with their owner and mode kept
# where the kernel allows (run with --user "$(id -u):$(id -g)" to write as yourself).
USER 65532:65532
WORKDIR /src
ENTRYPOINT ["harden"]
CMD ["--help"]
