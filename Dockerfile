# A static, non-root pipetel image with CA certificates and nothing else.
#   make image            (buildah; FROM scratch needs no registry)
# The binary and the CA bundle are built and copied into the context by
# `make image`: no base image is pulled.
FROM scratch
COPY pipetel /pipetel
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# nonroot (65532), the uid the Kubernetes manifests run as.
USER 65532:65532
VOLUME ["/var/lib/pipetel"]
EXPOSE 9464
ENTRYPOINT ["/pipetel"]
CMD ["run", "--config", "/etc/pipetel/pipetel.yaml"]
