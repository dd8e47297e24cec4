#ifndef FANOUT_CMARIADB_SHIM_H
#define FANOUT_CMARIADB_SHIM_H

#include <stddef.h>
#include <mysql.h>
#include <errmsg.h>

// mysql_library_init is a macro, which Swift cannot import.
static inline int cmariadb_library_init(void) {
    return mysql_library_init(0, NULL, NULL);
}

// mysql_optionsv is variadic; these cover the argument types Fanout sets.
static inline int cmariadb_set_uint_option(MYSQL *mysql, enum mysql_option option, unsigned int value) {
    return mysql_optionsv(mysql, option, (void *)&value);
}

static inline int cmariadb_set_bool_option(MYSQL *mysql, enum mysql_option option, my_bool value) {
    return mysql_optionsv(mysql, option, (void *)&value);
}

static inline int cmariadb_set_string_option(MYSQL *mysql, enum mysql_option option, const char *value) {
    return mysql_optionsv(mysql, option, (const void *)value);
}

#endif
