/* Tests common/bc_csv.c: recipient CSVs, RFC 4180 quoting, and errors that
 * name the line to fix. */
#include <string.h>

#include "bc_csv.h"
#include "bc_test.h"

#define MAX_ROWS 100
#define MAX_BYTES 65536

static json_t *parse(const char *s, bc_err *err)
{
    return bc_csv_recipients(s, strlen(s), MAX_ROWS, MAX_BYTES, err);
}

/* Asserts that s is rejected with a message containing want. */
static void rejects(const char *s, const char *want)
{
    bc_err err = { "" };
    json_t *r = parse(s, &err);

    if (r)
        fail_msg("accepted: %s", s);
    if (!strstr(err.msg, want))
        fail_msg("error '%s' lacks '%s'", err.msg, want);
}

static const char *str(json_t *arr, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(arr, i), key));
}

static const char *var(json_t *arr, size_t i, const char *key)
{
    json_t *vars = json_object_get(json_array_get(arr, i), "dynamic_variables");

    return json_string_value(json_object_get(vars, key));
}

static void test_plain_rows_become_recipients(void **state)
{
    (void)state;
    bc_err err = { "" };
    json_t *r = parse("phone_number,first_name,company\n"
                      "+14155559876,John,Acme\n"
                      "+1 (415) 555-0101,Jane,\n", &err);

    assert_non_null(r);
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(str(r, 0, "to_number"), "+14155559876");
    assert_string_equal(var(r, 0, "first_name"), "John");
    assert_string_equal(var(r, 0, "company"), "Acme");
    assert_string_equal(str(r, 1, "to_number"), "+14155550101");   /* normalised */
    assert_string_equal(var(r, 1, "company"), "");
    assert_null(json_object_get(json_array_get(r, 0), "from_number"));
    assert_null(var(r, 0, "phone_number"));
    json_decref(r);
}

static void test_rfc4180_quoting(void **state)
{
    (void)state;
    bc_err err = { "" };
    json_t *r = parse("\xEF\xBB\xBF\"to_number\",note\r\n"
                      "\"+14155559876\",\"Hello, \"\"World\"\"\"\r\n"
                      "+14155550101,\"two\r\nlines\"\r\n", &err);

    assert_non_null(r);
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(var(r, 0, "note"), "Hello, \"World\"");
    assert_string_equal(var(r, 1, "note"), "two\r\nlines");
    json_decref(r);
}

static void test_number_column_names_and_from_number(void **state)
{
    (void)state;
    bc_err err = { "" };
    json_t *r = parse(" Number , From_Number\n+442071838750,0044 20 7183 8751\n"
                      "+14155559876,\n", &err);

    assert_non_null(r);
    assert_string_equal(str(r, 0, "to_number"), "+442071838750");
    assert_string_equal(str(r, 0, "from_number"), "+442071838751");
    assert_null(json_object_get(json_array_get(r, 1), "from_number"));   /* empty: left out */
    assert_int_equal(json_object_size(json_object_get(json_array_get(r, 0),
                                                      "dynamic_variables")), 0);
    json_decref(r);
}

static void test_blank_lines_and_short_rows(void **state)
{
    (void)state;
    bc_err err = { "" };
    json_t *r = parse("\nto_number,a,b\n\n+14155559876\n\n+14155550101,x\n\n", &err);

    assert_non_null(r);
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(var(r, 0, "a"), "");
    assert_string_equal(var(r, 1, "a"), "x");
    assert_string_equal(var(r, 1, "b"), "");
    json_decref(r);

    r = parse("phone_number\n", &err);   /* a header alone: no recipients */
    assert_non_null(r);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
}

static void test_bad_quoting_names_the_line(void **state)
{
    (void)state;
    rejects("to_number,note\n+14155559876,\"open\n", "line 2: a quoted field is never closed");
    rejects("to_number,note\n+14155559876,ok\n+14155550101,\"a\"b\n",
            "line 3: text after a closing quote");
    rejects("to_number,note\n+14155559876,say \"hi\"\n", "line 2: a quote inside an unquoted");
    rejects("to_number,note\n+14155559876,\"a\nb\"x\n", "line 3: text after a closing quote");
}

static void test_header_problems(void **state)
{
    (void)state;
    rejects("", "line 1: a header row");
    rejects("\n\n", "line 3: a header row");
    rejects("name,email\n+14155559876,a@b\n", "line 1: no number column");
    rejects("phone_number,to_number\n", "more than one number column ('phone_number' and "
            "'to_number')");
    rejects("to_number,a,a\n", "line 1: column 'a' appears twice");
    rejects("to_number,,b\n", "line 1: column 2 has no name");
    rejects("to_number,\xff\n", "not valid UTF-8");
}

static void test_row_problems(void **state)
{
    (void)state;
    rejects("to_number,a\n+14155559876,1\n+14155550101,1,2\n",
            "line 3: 3 fields, but the header has 2");
    rejects("to_number,a\n+14155559876,1\n4155550101,1\n",
            "line 3: to_number is not a phone number in E.164 form");
    rejects("to_number,from_number\n+14155559876,+0\n",
            "line 2: from_number is not a phone number");
    rejects("to_number,a\n,1\n", "line 2: to_number is empty");
    rejects("to_number,a\n+14155559876,\xc3\x28\n", "line 2: column 'a' is not valid UTF-8");
}

static void test_nul_byte_is_rejected(void **state)
{
    (void)state;
    static const char s[] = "to_number,a\n+14155559876,x\0y\n";
    bc_err err = { "" };

    assert_null(bc_csv_recipients(s, sizeof s - 1, MAX_ROWS, MAX_BYTES, &err));
    assert_non_null(strstr(err.msg, "line 2: NUL byte"));
}

static void test_limits(void **state)
{
    (void)state;
    static const char s[] = "to_number\n+14155559876\n+14155550101\n+14155550102\n";
    bc_err err = { "" };
    json_t *r;

    r = bc_csv_recipients(s, sizeof s - 1, 3, MAX_BYTES, &err);
    assert_non_null(r);
    json_decref(r);
    assert_null(bc_csv_recipients(s, sizeof s - 1, 2, MAX_BYTES, &err));
    assert_non_null(strstr(err.msg, "line 4: more than 2 recipients"));
    assert_null(bc_csv_recipients(s, sizeof s - 1, 3, 20, &err));
    assert_non_null(strstr(err.msg, "more than the 20 allowed"));
}

static void test_too_many_columns(void **state)
{
    (void)state;
    char s[BC_CSV_MAX_COLUMNS * 8 + 32];
    size_t n = (size_t)snprintf(s, sizeof s, "to_number");

    for (int i = 0; i < BC_CSV_MAX_COLUMNS; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, ",c%d", i);
    rejects(s, "line 1: more than 100 columns");
}

BC_TEST_MAIN(cmocka_unit_test(test_plain_rows_become_recipients),
             cmocka_unit_test(test_rfc4180_quoting),
             cmocka_unit_test(test_number_column_names_and_from_number),
             cmocka_unit_test(test_blank_lines_and_short_rows),
             cmocka_unit_test(test_bad_quoting_names_the_line),
             cmocka_unit_test(test_header_problems),
             cmocka_unit_test(test_row_problems),
             cmocka_unit_test(test_nul_byte_is_rejected),
             cmocka_unit_test(test_limits),
             cmocka_unit_test(test_too_many_columns))
