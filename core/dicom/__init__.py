"""Reading DICOM: header parsing (native kernels), the tag table, codestream checks, element listings, DICOMDIR."""
