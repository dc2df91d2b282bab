import sys

try:
    from dicom_node.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: no traceback for that either
    sys.exit(130)

main()
