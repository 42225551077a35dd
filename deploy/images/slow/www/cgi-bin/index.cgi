#!/bin/sh
# Answers every call of / after SLEEP_S seconds (0.1 unless set).
sleep "${SLEEP_S:-0.1}"
printf 'Content-Type: text/plain\r\n\r\nslow %s\n' "${SLEEP_S:-0.1}"
