// librdkafka's C API, from Debian's librdkafka-dev (built only with the Kafka trait).
#ifndef RAMPART_RDKAFKA_SHIM_H
#define RAMPART_RDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
