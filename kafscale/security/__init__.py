"""Who a connection is: TLS, SASL and the principal they establish."""
