#!/bin/sh
# Answers 500 to every call of / (a revision that starts fine and fails every request).
printf 'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nfailing on purpose\n'
