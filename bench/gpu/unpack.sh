# Sourced by the GPU scripts: unpacks $FLEXSERVE from $FLEXSERVE.xz (carried compressed; no xz? Python's lzma)
# and stops when there is no executable.
if [ ! -x "$FLEXSERVE" ] && [ -f "$FLEXSERVE.xz" ]; then
    echo "unpacking $FLEXSERVE.xz"
    { xz -dc "$FLEXSERVE.xz" || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
        "$FLEXSERVE.xz"; } > "$FLEXSERVE" && chmod +x "$FLEXSERVE"
fi
[ -x "$FLEXSERVE" ] || { echo "no executable at $FLEXSERVE (nor $FLEXSERVE.xz)"; exit 1; }
