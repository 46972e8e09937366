#include "trace/trace-accel_tcg_hspt.h"
